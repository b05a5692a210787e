"""The span reader and the Tempo/Jaeger client: against the real gateway's span files (served
for the client by a loopback HTTP server in both stores' shapes), and on files written by the
gateway's own SpanWriter with chosen times, torn lines and garbage."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from readers_support import (
    PARENT_SPAN,
    T0,
    Answer,
    GatewayRun,
    jaeger_body,
    otlp_lines,
    span_at,
    tempo_body,
    trace_store,
    unopenable,
    write_spans,
)
from support import free_port

from console.adapters.samples import SampleFilter, read_samples
from console.adapters.traces import (
    SpanFilter,
    TraceQueryClient,
    parse_otlp_json,
    read_spans,
)
from console.errors import (
    BackendResponseError,
    BackendUnavailable,
    ConfigError,
    ConsoleError,
)

# Against the real gateway ------------------------------------------------------------------


def test_one_span_per_request_with_the_gateway_attributes(gateway_run: GatewayRun) -> None:
    batch = read_spans(gateway_run.traces_dir, SpanFilter())
    assert batch.skipped_lines == 0 and not batch.truncated and batch.files_read == 1
    by_trace = {span.trace_id: span for span in batch.records}
    assert len(batch.records) == len(gateway_run.sent) == len(by_trace)
    assert set(by_trace) == {s.trace_id for s in gateway_run.sent}
    for sent in gateway_run.sent:
        span = by_trace[sent.trace_id]
        attrs = span.attributes
        assert attrs["aml.client"] == (sent.client or "")
        assert attrs["aml.model"] == sent.model
        assert attrs["http.response.status_code"] == sent.status
        assert span.service == "aml-gateway" and span.error is False
        assert span.name == "POST /v2/models/{name}/infer"
        assert span.parent_span_id == sent.parent_span_id
        assert len(span.span_id) == 16 and span.duration_ms > 0
        if sent.status == 200:
            assert attrs["aml.outcome"] == "ok"
            assert attrs["aml.model_version"] == gateway_run.version
            assert attrs["aml.rows"] == len(sent.rows)
            assert isinstance(attrs["aml.detector_score"], float)
            assert isinstance(attrs["aml.flagged"], bool)
        else:
            assert attrs["aml.outcome"] == "error"
    starts = [s.start for s in batch.records]
    assert starts == sorted(starts, reverse=True)
    assert starts[-1].tzinfo is not None


def test_span_sample_ids_name_the_samples_of_their_trace(gateway_run: GatewayRun) -> None:
    samples = read_samples(gateway_run.samples_dir, SampleFilter()).records
    spans = read_spans(gateway_run.traces_dir, SpanFilter(outcome="ok")).records
    assert len(spans) == len(gateway_run.ok())
    for span in spans:
        ids = str(span.attributes["aml.sample_id"]).split(",")
        assert sorted(ids) == sorted(s.sample_id for s in samples if s.trace_id == span.trace_id)
        of_trace = [s for s in samples if s.trace_id == span.trace_id]
        if len(of_trace) == 1:
            assert span.attributes["aml.input_sha256"] == of_trace[0].input_sha256


def test_filters_on_the_real_span_files(gateway_run: GatewayRun) -> None:
    def traces(**kw: Any) -> set[str]:
        return {s.trace_id for s in read_spans(gateway_run.traces_dir, SpanFilter(**kw)).records}

    sent = gateway_run.sent
    assert traces(client="bob") == {s.trace_id for s in sent if s.client == "bob"}
    assert traces(outcome="error") == {s.trace_id for s in sent if s.status != 200}
    assert traces(model="no-such-model") == {sent[-1].trace_id}
    assert traces(client="alice", model=gateway_run.model) == {
        s.trace_id for s in sent if s.client == "alice" and s.status == 200
    }
    assert traces(trace_ids=frozenset({sent[0].trace_id.upper()})) == {sent[0].trace_id}
    everything = read_spans(gateway_run.traces_dir, SpanFilter()).records
    newest_two = read_spans(gateway_run.traces_dir, SpanFilter(limit=2))
    assert newest_two.records == everything[:2] and newest_two.truncated
    oldest = everything[-1].start
    assert traces(until=oldest) == set()
    assert traces(since=oldest, until=oldest + timedelta(microseconds=1)) == {
        everything[-1].trace_id
    }


# TraceQueryClient against a loopback stand-in of Tempo and Jaeger ---------------------------


def _by_trace(gateway_run: GatewayRun, trace_id: str) -> list[Any]:
    flt = SpanFilter(trace_ids=frozenset({trace_id}))
    return sorted(read_spans(gateway_run.traces_dir, flt).records, key=lambda s: s.start)


@pytest.mark.parametrize("kind", ["tempo", "jaeger"])
async def test_get_trace_reads_both_stores_shapes(gateway_run: GatewayRun, kind: str) -> None:
    carol = next(s for s in gateway_run.sent if s.client == "carol")  # has a parent span
    lines = otlp_lines(gateway_run.traces_dir, carol.trace_id)
    assert len(lines) == 1
    if kind == "tempo":
        path, body = f"/api/traces/{carol.trace_id}", tempo_body(lines)
        assert "batches" in json.loads(body) and carol.trace_id not in body.decode()
    else:
        path, body = f"/api/v3/traces/{carol.trace_id}", jaeger_body(lines)
    with trace_store() as store:
        store.routes[path] = Answer(200, body)
        async with TraceQueryClient(kind, store.url, 5.0) as client:  # type: ignore[arg-type]
            spans = await client.get_trace(carol.trace_id.upper())
            missing = await client.get_trace("ab" * 16)
    assert spans == _by_trace(gateway_run, carol.trace_id)
    assert spans[0].parent_span_id == PARENT_SPAN
    assert missing == []
    assert store.seen == [path, path.replace(carol.trace_id, "ab" * 16)]


async def test_the_samples_view_reads_a_trace_from_tempo_with_its_credentials(
    gateway_run: GatewayRun, tmp_path: Path
) -> None:
    """``traces.path`` a URL: the view's trace lookup goes to Tempo through ``Backends``, with
    ``[traces] basic_auth`` (the password from its file)."""
    from console.adapters.backends import Backends
    from console.config import Settings
    from console.views.samples import fetch_trace

    carol = next(s for s in gateway_run.sent if s.client == "carol")
    secret = tmp_path / "tempo-password"
    secret.write_text("tempo-Pa55\n")
    with trace_store() as store:
        path = f"/api/traces/{carol.trace_id}"
        store.routes[path] = Answer(
            200, tempo_body(otlp_lines(gateway_run.traces_dir, carol.trace_id))
        )
        settings = Settings(
            run_dir=tmp_path,
            traces={  # type: ignore[arg-type]
                "path": store.url,
                "basic_auth": {"username": "oncall", "password_file": str(secret)},
            },
        )
        backends = Backends(settings)
        try:
            spans = await fetch_trace(backends, carol.trace_id)
        finally:
            await backends.aclose()
    assert spans == _by_trace(gateway_run, carol.trace_id)
    assert store.seen == [path]
    assert store.authorizations == ["Basic " + base64.b64encode(b"oncall:tempo-Pa55").decode()]


async def test_get_trace_errors(gateway_run: GatewayRun) -> None:
    trace_id = gateway_run.sent[0].trace_id
    path = f"/api/traces/{trace_id}"
    with trace_store() as store:
        async with TraceQueryClient("tempo", store.url, 5.0, retries=1) as client:
            store.routes[path] = Answer(500, b"internal error")
            with pytest.raises(BackendResponseError, match="HTTP 500") as failed:
                await client.get_trace(trace_id)
            assert failed.value.status == 500 and store.seen == [path, path]  # retried once
            store.routes[path] = Answer(200, b"<html>not json</html>", "text/html")
            with pytest.raises(BackendResponseError, match="not JSON"):
                await client.get_trace(trace_id)
            store.routes[path] = Answer(200, b'{"traces": []}')
            with pytest.raises(BackendResponseError, match="not OTLP JSON"):
                await client.get_trace(trace_id)
            store.routes[path] = Answer(200, b"[1, 2]")
            with pytest.raises(BackendResponseError, match="not OTLP JSON"):
                await client.get_trace(trace_id)
            store.routes[path] = Answer(200, b'{"batches": [{"scopeSpans": [{"spans": [{}]}]}]}')
            with pytest.raises(BackendResponseError, match=r"spans\[0\]: no traceId"):
                await client.get_trace(trace_id)
            asked = len(store.seen)
            for bad in ("xyz", trace_id[:-1], trace_id + "0", "0" * 32, "../" + trace_id[3:]):
                with pytest.raises(ConsoleError, match="not a trace id"):
                    await client.get_trace(bad)
            assert len(store.seen) == asked  # nothing sent for a malformed id
    async with TraceQueryClient(
        "jaeger", f"http://127.0.0.1:{free_port()}", 2.0, retries=0
    ) as nobody:
        with pytest.raises(BackendUnavailable, match="cannot connect"):
            await nobody.get_trace(trace_id)
    with pytest.raises(ConfigError, match="tempo or jaeger"):
        TraceQueryClient("zipkin", "http://127.0.0.1:1", 1.0)  # type: ignore[arg-type]


# Synthetic files, written by the gateway's SpanWriter ----------------------------------------


def test_torn_and_garbage_lines_are_skipped_and_counted(tmp_path: Path) -> None:
    write_spans(tmp_path, [span_at(T0 + timedelta(seconds=i), n=i + 1) for i in range(3)])
    (file,) = tmp_path.iterdir()
    good = file.read_text().splitlines()[0]
    garbage = [
        "not json",
        '{"hello": "world"}',
        '{"resourceSpans": [{"scopeSpans": [{"spans": [{"spanId": "00f067aa0ba902b7"}]}]}]}',
        good.replace('"intValue":', '"intValue":"x", "ignored":'),
        good.replace(f"{1:032x}", "nothex" * 5),
        "",
    ]
    with file.open("a") as handle:
        handle.write("\n".join(garbage) + "\n" + good[:-10])
    batch = read_spans(tmp_path, SpanFilter())
    assert [s.trace_id for s in batch.records] == [f"{n:032x}" for n in (3, 2, 1)]
    assert batch.skipped_lines == 6 and batch.files_read == 1


def test_only_day_files_are_read(tmp_path: Path) -> None:
    write_spans(tmp_path, [span_at(T0)])
    (real,) = tmp_path.iterdir()
    for name in ("traces-latest.jsonl", "traces-2026-13-01.jsonl", "traces-20260104.jsonl"):
        (tmp_path / name).write_text(real.read_text())
    (tmp_path / "notes.txt").write_text("hello\n")
    (tmp_path / "traces-2026-01-04.jsonl.1").write_text(real.read_text())
    batch = read_spans(tmp_path, SpanFilter())
    assert len(batch.records) == 1 and batch.files_read == 1


def test_files_outside_the_window_are_not_opened(tmp_path: Path) -> None:
    write_spans(tmp_path, [span_at(datetime(2026, 1, d, 12, tzinfo=UTC), n=d) for d in (3, 4, 5)])
    unopenable(tmp_path / "traces-2026-01-01.jsonl")
    unopenable(tmp_path / "traces-2026-01-07.jsonl")
    window = SpanFilter(
        since=datetime(2026, 1, 2, tzinfo=UTC), until=datetime(2026, 1, 5, 13, tzinfo=UTC)
    )
    batch = read_spans(tmp_path, window)
    assert [s.start.day for s in batch.records] == [5, 4, 3]
    assert batch.files_read == 3
    with pytest.raises(ConsoleError, match="span files: cannot read"):
        read_spans(tmp_path, SpanFilter(since=datetime(2026, 1, 2, tzinfo=UTC)))


def test_spans_that_end_after_midnight_are_found_and_ordered(tmp_path: Path) -> None:
    midnight = datetime(2026, 1, 2, tzinfo=UTC)
    a = span_at(midnight - timedelta(milliseconds=100), 200.0, n=1)  # in the 01-02 file
    a2 = span_at(midnight - timedelta(milliseconds=90), 200.0, n=2)  # in the 01-02 file
    b = span_at(midnight - timedelta(milliseconds=50), 10.0, n=3)  # in the 01-01 file
    write_spans(tmp_path, [a, a2, b])
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "traces-2026-01-01.jsonl",
        "traces-2026-01-02.jsonl",
    ]
    unopenable(tmp_path / "traces-2026-01-03.jsonl")  # cannot hold a span starting before 01-02

    with pytest.raises(ConsoleError):  # the 01-03 trap is read when nothing bounds the window
        read_spans(tmp_path, SpanFilter(limit=1, until=midnight + timedelta(days=1, seconds=1)))
    newest = read_spans(tmp_path, SpanFilter(limit=1, until=midnight))
    assert [s.trace_id for s in newest.records] == [f"{3:032x}"] and newest.truncated
    assert newest.files_read == 2
    everything = read_spans(tmp_path, SpanFilter(until=midnight))
    assert [s.trace_id for s in everything.records] == [f"{n:032x}" for n in (3, 2, 1)]
    assert everything.records[0].duration_ms == pytest.approx(10.0)


def test_reading_stops_once_the_newest_spans_are_known(tmp_path: Path) -> None:
    write_spans(tmp_path, [span_at(T0 + timedelta(seconds=i), n=i + 1) for i in range(5)])
    unopenable(tmp_path / "traces-2026-01-04.jsonl")
    batch = read_spans(tmp_path, SpanFilter(limit=4))
    assert [s.trace_id for s in batch.records] == [f"{n:032x}" for n in (5, 4, 3, 2)]
    assert batch.truncated and batch.files_read == 1
    with pytest.raises(ConsoleError, match="cannot read"):
        read_spans(tmp_path, SpanFilter(limit=5))  # truncation is unknown until 01-04 is read


def test_span_filter_combinations(tmp_path: Path) -> None:
    write_spans(
        tmp_path,
        [
            span_at(T0, n=1, attrs={"aml.client": "alice", "aml.outcome": "ok"}),
            span_at(T0 + timedelta(seconds=1), n=2, attrs={"aml.client": "bob"}),
            span_at(
                T0 + timedelta(seconds=2),
                n=3,
                attrs={"aml.client": "alice", "aml.outcome": "blocked"},
            ),
            span_at(T0 + timedelta(seconds=3), n=4, attrs={"aml.model": "other"}, error=True),
        ],
    )

    def ids(**kw: Any) -> list[int]:
        return [int(s.trace_id, 16) for s in read_spans(tmp_path, SpanFilter(**kw)).records]

    assert ids(client="alice") == [4, 3, 1]
    assert ids(client="alice", outcome="ok") == [4, 1]
    assert ids(outcome="blocked") == [3]
    assert ids(model="other") == [4]
    assert ids(model="digits", client="bob") == [2]
    assert ids(since=T0 + timedelta(seconds=1), until=T0 + timedelta(seconds=3)) == [3, 2]
    assert ids(trace_ids=frozenset({f"{1:032x}", f"{4:032x}"}), outcome="ok") == [4, 1]
    errors = [s.error for s in read_spans(tmp_path, SpanFilter()).records]
    assert errors == [True, False, False, False]
    with pytest.raises(ConsoleError, match="limit must be between"):
        SpanFilter(limit=0)
    with pytest.raises(ConsoleError, match="timezone-aware"):
        SpanFilter(until=datetime(2026, 1, 1))  # noqa: DTZ001


def test_span_directory_problems(tmp_path: Path) -> None:
    assert read_spans(tmp_path / "absent", SpanFilter()).records == []
    (tmp_path / "traces").write_text("")
    with pytest.raises(ConfigError, match="is not a directory"):
        read_spans(tmp_path / "traces", SpanFilter())


# parse_otlp_json -----------------------------------------------------------------------------


def _b64(hex_id: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_id)).decode()


def test_parse_accepts_older_and_sparser_otlp() -> None:
    trace_id, span_id, parent = "5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174", "ab" * 8
    document = {
        "batches": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": "svc"}}]
                },
                "instrumentationLibrarySpans": [
                    {
                        "spans": [
                            {
                                "traceId": _b64(trace_id),
                                "spanId": _b64(span_id),
                                "parentSpanId": _b64(parent),
                                "name": "op",
                                "startTimeUnixNano": "1767614400123456789",
                                "endTimeUnixNano": 1767614400125456789,
                                "status": {"code": "STATUS_CODE_ERROR"},
                                "attributes": [
                                    {"key": "i", "value": {"intValue": "42"}},
                                    {"key": "d", "value": {"doubleValue": 0.5}},
                                    {"key": "n", "value": {"doubleValue": "NaN"}},
                                    {"key": "b", "value": {"boolValue": False}},
                                    {"key": "s", "value": {"stringValue": ""}},
                                    {"key": "a", "value": {"arrayValue": {"values": []}}},
                                    {"key": "empty", "value": {}},
                                ],
                            },
                            {"traceId": trace_id, "spanId": span_id, "startTimeUnixNano": "1"},
                        ]
                    },
                    {},
                ],
            },
            {"scopeSpans": [{"scope": {"name": "x"}}]},
        ]
    }
    full, bare = parse_otlp_json(document)
    assert (full.trace_id, full.span_id, full.parent_span_id) == (trace_id, span_id, parent)
    assert full.start == datetime(2026, 1, 5, 12, 0, 0, 123456, tzinfo=UTC)
    assert full.duration_ms == pytest.approx(2.0)
    assert full.error and full.service == "svc" and full.name == "op"
    attrs = dict(full.attributes)
    nan = attrs.pop("n")
    assert nan != nan
    assert attrs == {"i": 42, "d": 0.5, "b": False, "s": "", "a": '{"arrayValue":{"values":[]}}'}
    assert isinstance(attrs["i"], int)
    assert (bare.parent_span_id, bare.name, bare.attributes, bare.error) == (None, "", {}, False)
    assert bare.duration_ms == 0.0 and bare.service == "svc"
    assert parse_otlp_json({"resourceSpans": []}) == []


@pytest.mark.parametrize(
    "document, message",
    [
        ([], "a list, not an object"),
        ({"data": []}, "no resourceSpans"),
        ({"resourceSpans": "x"}, "no resourceSpans"),
        ({"resourceSpans": [1]}, r"resourceSpans\[0\] is not an object"),
        ({"resourceSpans": [{"scopeSpans": {}}]}, "scopeSpans is not a list"),
        ({"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "ab"}]}]}]}, "traceId"),
        (
            {
                "resourceSpans": [
                    {
                        "scopeSpans": [
                            {
                                "spans": [
                                    {
                                        "traceId": "ab" * 16,
                                        "spanId": "cd" * 8,
                                        "startTimeUnixNano": "soon",
                                    }
                                ]
                            }
                        ]
                    }
                ]
            },
            "startTimeUnixNano 'soon' is not an integer",
        ),
    ],
)
def test_parse_rejects_what_is_not_otlp(document: Any, message: str) -> None:
    with pytest.raises(BackendResponseError, match=message):
        parse_otlp_json(document, backend="tempo")
