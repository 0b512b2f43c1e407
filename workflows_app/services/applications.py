"""Creating applications: the RSA key pair callers sign their JWTs with.

The private key is returned once and never stored; the service keeps only the public key
(reference/vonage-api.md §1.6: JWTs are RS256, signed with the application's private key).
"""

from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from workflows_app.models import Account, Application
from workflows_app.services.accounts import urls_check

RSA_KEY_BITS = 2048


@dataclass(frozen=True)
class NewApplication:
    application: Application
    private_key: str  # PKCS#8 PEM ("BEGIN PRIVATE KEY"), the form Vonage's SDKs expect


def application_create(
    *, account: Account, name: str, status_url: str = "", inbound_url: str = ""
) -> NewApplication:
    """Create an application for ``account`` with a fresh key pair; only the public key is kept.

    Raises ValidationError naming ``status_url`` or ``inbound_url`` unless each is empty or an
    http(s) URL (:func:`~workflows_app.services.accounts.urls_check`).
    """
    urls_check(status_url=status_url, inbound_url=inbound_url)
    key = rsa.generate_private_key(public_exponent=65537, key_size=RSA_KEY_BITS)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public_pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    application = Application.objects.create(
        account=account,
        name=name,
        public_key=public_pem,
        status_url=status_url,
        inbound_url=inbound_url,
    )
    return NewApplication(application=application, private_key=private_pem)
