"""The embedded lab: real services on loopback (launcher), a seeded model registry, and the
guarded gateway, traffic and attackers that drills run against.

Import submodules directly (``console.lab.services``, ``console.lab.seed``); this package imports
nothing so that ``--help`` stays fast.
"""
