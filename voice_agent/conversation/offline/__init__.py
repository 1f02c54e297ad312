"""The offline receptionist: rule-based understanding, a dialogue state machine, reply files."""
