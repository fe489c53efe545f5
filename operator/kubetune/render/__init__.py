"""Pure functions from a FineTuneJob to what runs it: trainer config and child manifests.

Nothing here talks to a cluster or reads the clock, so every function is unit-tested
with plain data.
"""
