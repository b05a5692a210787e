"""The on-call TUI (Textual). Only this package imports Textual; it reads through
``console.views`` and acts through ``console.runbooks``, like the CLI."""
