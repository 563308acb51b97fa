"""Dynamical systems and integrators for the physics tasks."""
