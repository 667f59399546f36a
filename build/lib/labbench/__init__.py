"""Benchmark peers (stdlib only): the asyncio-streams echo server and the load generator."""
