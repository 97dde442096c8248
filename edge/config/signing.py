"""Event signing settings (owned by ``edge.events.signing``)."""

from __future__ import annotations

import os.path

from edge.config.base import Field, StrictModel


class SigningConfig(StrictModel):
    """Every event is signed with the box's Ed25519 key so a city can prove it came from this box unaltered."""

    enabled: bool = Field(
        True, description="Sign every event (detached Ed25519 signature in the envelope's sig member)."
    )
    key_dir: str | None = Field(
        None,
        description=(
            "Directory of the box's signing key (signing.key, mode 0600, made on first start) and of "
            "public_keys.json, the file a city registers; default: keys/ beside the outbox (the state directory)."
        ),
    )
    key_file: str | None = Field(
        None,
        description=(
            "A provisioned Ed25519 private key (PKCS#8 PEM, not readable by other users); when set the box "
            "signs with it and never generates one. Its public key is still listed in key_dir/public_keys.json."
        ),
    )

    def resolved_key_dir(self, outbox_path: str) -> str:
        """``key_dir``, or ``keys/`` in the directory of the outbox."""
        if self.key_dir is not None:
            return self.key_dir
        return os.path.join(os.path.dirname(outbox_path) or ".", "keys")
