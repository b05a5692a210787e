"""Runbooks: schema, loader, parameters, actions and the engine that runs them."""
