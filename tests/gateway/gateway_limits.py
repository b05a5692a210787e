"""The slow-body limits the gateway fixtures start the gateway with (a module of its own: test
modules import it by a name no other test directory uses, unlike ``conftest``)."""

SLOW_BODY_TIMEOUT_S = 2
MAX_PENDING_BODIES = 4
