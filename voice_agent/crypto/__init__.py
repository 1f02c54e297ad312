"""At-rest encryption primitives (keys, the keyring bound to an engine): the lowest layer,
below the store, importing no layer. The privacy jobs that use them live in ``privacy/``."""
