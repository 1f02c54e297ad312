"""Patient data at rest: field encryption keys, look-up hashes, file permissions, retention,
export and erasure (LGPD / 152-FZ)."""
