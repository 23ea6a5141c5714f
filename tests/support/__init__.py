"""Helpers shared by the tests (no tests here): servers, clients, scenarios."""
