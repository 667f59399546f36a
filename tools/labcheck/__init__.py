"""The conformance kit: grade any server or client across real hosts (docs/check.md)."""
