"""``exportjobs ca``: where the proxy's CA certificate is, and how each client trusts it.

HTTPS through the proxy is intercepted: the proxy shows clients certificates signed by
mitmproxy's CA, which lives in the confdir (``~/.mitmproxy`` unless ``--confdir``). The
command generates the CA the way the proxy would when it is missing, so the path it prints
exists before the proxy has ever run.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

_TRUST = """\
HTTPS clients that go through the proxy must trust this certificate: the proxy shows them
certificates it signs with it. Per client:

  Python requests  REQUESTS_CA_BUNDLE={ca}
                   or requests.get(url, verify="{ca}")
  Python httpx     SSL_CERT_FILE={ca}
                   or httpx.Client(verify=ssl.create_default_context(cafile="{ca}"))
  Python aiohttp   ssl.create_default_context(cafile="{ca}"), passed as ssl=
  Node.js          NODE_EXTRA_CA_CERTS={ca}   (added to Node's own CAs)
  curl             curl --cacert {ca} ...   or CURL_CA_BUNDLE={ca}
  .NET             trust it in the system store: Linux: sudo cp {ca}
                   /usr/local/share/ca-certificates/exportjobs-mitmproxy.crt && sudo
                   update-ca-certificates; Windows: certutil -user -addstore Root {cer};
                   or an HttpClientHandler whose ServerCertificateCustomValidationCallback
                   accepts chains ending in this certificate
  Java             keytool -importcert -noprompt -alias exportjobs-mitmproxy -file {ca}
                   -keystore exportjobs-trust.jks -storepass changeit
                   then java -Djavax.net.ssl.trustStore=exportjobs-trust.jks
                   -Djavax.net.ssl.trustStorePassword=changeit ...

REQUESTS_CA_BUNDLE, SSL_CERT_FILE and CURL_CA_BUNDLE replace the usual CAs: set them only
for a process whose HTTPS all goes through the proxy. Never install this CA where you do not
need it: whoever holds its key (in {confdir}) can impersonate any site to that machine."""


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ca", help="print the proxy's CA certificate path and how to trust it")
    p.add_argument("--confdir", metavar="DIR", default=None,
                   help="mitmproxy's configuration folder, as given to exportjobs proxy "
                        "(default ~/.mitmproxy)")
    p.add_argument("--path", action="store_true",
                   help="print only the path (for scripts: NODE_EXTRA_CA_CERTS=$(exportjobs ca --path))")
    p.set_defaults(func=_ca)


def ca_certificate(confdir: str | os.PathLike[str] | None = None) -> tuple[Path, bool]:
    """The CA certificate of ``confdir`` (mitmproxy's default when None), generated as the
    proxy generates it when missing; and whether it was generated now."""
    from mitmproxy import certs, options

    opts = options.Options()
    folder = Path(os.path.expanduser(os.fspath(confdir) if confdir is not None else opts.confdir))
    cert = folder / f"{options.CONF_BASENAME}-ca-cert.pem"
    created = not (folder / f"{options.CONF_BASENAME}-ca.pem").exists()
    certs.CertStore.from_store(folder, options.CONF_BASENAME, opts.key_size)
    return cert, created


def _ca(args: argparse.Namespace) -> int:
    import sys

    try:
        cert, created = ca_certificate(args.confdir)
    except OSError as exc:
        print(f"exportjobs ca: --confdir {args.confdir or '~/.mitmproxy'}: cannot create the CA "
              f"there ({exc.strerror}); pick a writable folder", file=sys.stderr)
        return 2
    if args.path:
        print(cert)
        return 0
    print(f"{cert}{'  (generated now)' if created else ''}\n")
    print(_TRUST.format(ca=cert, cer=cert.with_suffix(".cer"), confdir=cert.parent))
    return 0
