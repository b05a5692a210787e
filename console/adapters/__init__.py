"""Adapters: the only code that talks to real systems. They raise ``AdapterError`` subclasses."""
