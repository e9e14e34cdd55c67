"""Observation: what actually exists, on every host and in Ceph."""
