"""Image `source.ssh`: a raw file on another machine (the seed's user@host:/path.img).

It loads into an `SshSource`, and every malformed field is reported as file:line: field."""

from __future__ import annotations

import pytest

from reconciler.loading import load_texts
from reconciler.loading.diagnostics import SpecValidationError
from reconciler.model import SshSource

from .docs import doc


def _image(source: str) -> str:
    return doc("Image", "seed", f"  id: 3\n  source:\n    ssh:\n{source}")


def test_an_ssh_source_loads_with_its_options() -> None:
    text = _image(
        "      host: root@10.1.33.121\n      path: /var/lib/images/ubuntu.img\n"
        "      port: 2222\n      identityFile: /var/lib/volctl/.ssh/id_ed25519\n"
        "      knownHostsFile: /var/lib/volctl/.ssh/known_hosts\n"
    )
    image = load_texts([("i.yaml", text)]).images["seed"]
    assert image.source == image.source.__class__(
        ssh=SshSource(
            "root@10.1.33.121", "/var/lib/images/ubuntu.img", 2222,
            "/var/lib/volctl/.ssh/id_ed25519", "/var/lib/volctl/.ssh/known_hosts",
        )
    )  # fmt: skip
    assert str(image.source.ssh) == "root@10.1.33.121:/var/lib/images/ubuntu.img"


@pytest.mark.parametrize(
    ("source", "line", "field", "message"),
    [
        (
            "      host: -oProxyCommand=x\n      path: /a.img\n",
            9,
            "spec.source.ssh.host",
            "must be user@host or host as ssh takes it, like root@10.1.33.121",
        ),
        (
            "      host: root@h\n      path: images/a.img\n",
            10,
            "spec.source.ssh.path",
            "must be an absolute file path",
        ),
        ("      host: root@h\n", 8, "spec.source.ssh.path", "required field"),
        (
            "      host: root@h\n      path: /a.img\n      port: 70000\n",
            11,
            "spec.source.ssh.port",
            "≤ 65535",
        ),
        (
            "      host: root@h\n      path: /a.img\n      user: root\n",
            11,
            "spec.source.ssh.user",
            "unknown field",
        ),
    ],
)
def test_bad_ssh_sources_name_file_line_and_field(
    source: str, line: int, field: str, message: str
) -> None:
    with pytest.raises(SpecValidationError) as err:
        load_texts([("i.yaml", _image(source))])
    shown = [str(d) for d in err.value.diagnostics]
    assert any(
        s.startswith(f"i.yaml:{line}: ") and f"{field}: " in s and message in s for s in shown
    ), shown


def test_an_ssh_source_and_a_path_together_are_refused() -> None:
    text = doc(
        "Image", "two", "  id: 3\n  source:\n    path: /a.img\n    ssh: {host: h, path: /b}\n"
    )
    with pytest.raises(SpecValidationError) as err:
        load_texts([("i.yaml", text)])
    assert any("spec.source" in str(d) for d in err.value.diagnostics)
