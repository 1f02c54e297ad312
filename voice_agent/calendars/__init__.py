"""Calendar backends: where a doctor's time lives. The local SQL calendar is the default."""
