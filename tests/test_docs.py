"""The documentation (README.md and docs/*.md) is correct as written.

- The MkDocs site builds with ``--strict``: a link to a missing page or anchor fails it.
- Every relative link of README.md and docs/*.md reaches a file, and its ``#anchor`` a
  heading of that file (as GitHub and MkDocs both name it).
- README.md stays at most 15,000 characters.
- Every ```` ```python ```` block runs as a script, in a subprocess in a temporary folder.
  The library has no setting that sends the default output to a file, so blocks run
  on the JACK test rig (tests/fixtures/audio.py): the subprocess's default ALSA device
  plays into the rig's speaker, and a block that speaks must be heard there (one that
  writes to a file or memory must not). Cloud and LLM blocks read the standard
  variables (``AWS_*``, ``OPENAI_API_KEY``, ``OPENAI_BASE_URL``, ``VOICEKIT_LLM_MODEL``),
  which point at the fake servers of tests/fixtures; blocks that talk to ``voicekit
  serve`` read ``VOICEKIT_URL``, a real server started here on 127.0.0.1. A block that
  truly cannot run here is marked ``<!-- not run: REASON -->`` on the line before it;
  at most 3 may be.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fixtures.audio import JackRecorder

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
README_LIMIT = 15_000
MAX_NOT_RUN = 3
BLOCK_TIMEOUT = 60

_FENCE = re.compile(r"^(?P<indent> *)(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`\s]*)")
_NOT_RUN = re.compile(r"^\s*<!--\s*not run:\s*(?P<reason>.+?)\s*-->\s*$")


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # 1-based line of the opening fence
    code: str
    not_run: str | None  # the reason, when marked

    @property
    def id(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def _split(page: Path) -> tuple[list[str], list[Block]]:
    """The page's lines outside code blocks (code lines blanked), and its python blocks."""
    lines = page.read_text(encoding="utf-8").splitlines()
    prose: list[str] = []
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if not opening:
            prose.append(lines[i])
            i += 1
            continue
        indent, fence = len(opening["indent"]), opening["fence"]
        body: list[str] = []
        j = i + 1
        while j < len(lines):
            closing = re.match(rf"^(?P<indent> *){re.escape(fence[0])}{{{len(fence)},}}\s*$", lines[j])
            if closing and len(closing["indent"]) <= indent + 3:
                break
            body.append(lines[j][indent:] if lines[j][:indent].strip() == "" else lines[j])
            j += 1
        if opening["info"] == "python":
            marker = _NOT_RUN.match(lines[i - 1]) if i else None
            blocks.append(Block(page, i + 1, "\n".join(body) + "\n", marker["reason"] if marker else None))
        prose.extend([""] * (j + 1 - i))
        i = j + 1
    return prose, blocks


def python_blocks() -> list[Block]:
    return [block for page in PAGES for block in _split(page)[1]]


# -- the site ------------------------------------------------------------------------------


def test_the_site_builds_strictly(tmp_path):
    pytest.importorskip("mkdocs", reason="needs MkDocs: pip install -e '.[docs]'")
    pytest.importorskip("material", reason="needs mkdocs-material: pip install -e '.[docs]'")
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "-f", str(ROOT / "mkdocs.yml"),
         "-d", str(tmp_path / "site")],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stdout}\n{proc.stderr}"
    assert (tmp_path / "site" / "index.html").is_file()


def test_every_page_is_in_the_nav():
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    missing = [p.name for p in PAGES[1:] if not re.search(rf":\s*{re.escape(p.name)}\s*$", nav, re.M)]
    assert not missing, f"pages missing from mkdocs.yml's nav: {missing}"


# -- links ---------------------------------------------------------------------------------

_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?(?P<target>[^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(?P<target>\S+?)>?(?:\s+.*)?$")
_HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(?P<text>.*?)(?:\s+#+)?\s*$")


def _plain(heading: str) -> str:
    """A heading's text as rendered: no code ticks, emphasis, link targets or HTML tags."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = re.sub(r"<[^>]+>", "", text)
    return text.replace("`", "").replace("**", "").replace("__", "")


def _slug_mkdocs(text: str) -> str:
    # Python-Markdown's toc.slugify (what MkDocs and Material use)
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def _slug_github(text: str) -> str:
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    """Anchors of the page's headings under both GitHub's and MkDocs' naming: a link must work on both."""
    prose, _ = _split(page)
    seen: dict[str, dict[str, int]] = {"github": {}, "mkdocs": {}}
    names: dict[str, set[str]] = {"github": set(), "mkdocs": set()}
    for line in prose:
        heading = _HEADING.match(line)
        if not heading:
            continue
        text = _plain(heading["text"])
        for style, slug, sep in (("github", _slug_github(text), "-"), ("mkdocs", _slug_mkdocs(text), "_")):
            count = seen[style].get(slug, 0)
            seen[style][slug] = count + 1
            names[style].add(slug if count == 0 else f"{slug}{sep}{count}")
    return names["github"] & names["mkdocs"]


def _links(page: Path) -> Iterator[tuple[int, str]]:
    prose, _ = _split(page)
    for number, line in enumerate(prose, start=1):
        line = re.sub(r"(`+)(?:(?!\1).)+?\1", "", line)  # inline code is not a link
        for match in (*_LINK.finditer(line), *filter(None, [_REFERENCE.match(line)])):
            yield number, match["target"]


def test_relative_links_reach_files_and_headings():
    dead = []
    for page in [*PAGES, ROOT / "examples" / "README.md"]:
        for number, target in _links(page):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):  # http:, mailto:: not relative
                continue
            path, _, anchor = target.partition("#")
            file = (page.parent / path).resolve() if path else page
            where = f"{page.relative_to(ROOT)}:{number}: {target}"
            if not file.exists():
                dead.append(f"{where} (no such file)")
            elif anchor and (file.suffix != ".md" or anchor not in _anchors(file)):
                dead.append(f"{where} (no heading #{anchor} in {file.relative_to(ROOT)})")
            elif ROOT not in file.parents and file != ROOT:
                dead.append(f"{where} (outside the repository)")
    assert not dead, "dead relative links:\n" + "\n".join(dead)


def test_readme_links_into_the_docs():
    targets = {target.partition("#")[0] for _, target in _links(ROOT / "README.md")}
    pages = {f"docs/{p.name}" for p in PAGES[1:]}
    assert pages <= targets, f"README.md links none of: {sorted(pages - targets)}"


def test_the_link_checker_finds_dead_links(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# A page\n\n## WebSocket `/v1/speak`\n\n[ok](#websocket-v1speak) [bad](#nope) "
                    "`[code](missing.md)`\n\n```\n[in a fence](missing.md)\n```\n[gone](missing.md)\n")
    assert list(_links(page)) == [(5, "#websocket-v1speak"), (5, "#nope"), (10, "missing.md")]
    assert _anchors(page) == {"a-page", "websocket-v1speak"}


# -- the README ----------------------------------------------------------------------------


def test_readme_is_short():
    size = len((ROOT / "README.md").read_text(encoding="utf-8"))
    assert size <= README_LIMIT, f"README.md has {size:,} characters; at most {README_LIMIT:,}: move detail to docs/"


# -- python blocks -------------------------------------------------------------------------

BLOCKS = python_blocks()


def test_few_blocks_are_left_unrun():
    unrun = [f"{b.id}: {b.not_run}" for b in BLOCKS if b.not_run]
    assert len(unrun) <= MAX_NOT_RUN, f"{len(unrun)} python blocks are marked not run (at most {MAX_NOT_RUN}):\n" + (
        "\n".join(unrun)
    )


def test_the_docs_have_python_blocks():
    pages = {b.page.name for b in BLOCKS}
    assert {"README.md", "api.md", "streaming.md", "engines.md", "server.md"} <= pages, pages


def _speaks(code: str) -> bool:
    """Whether a block plays to the default device: a TTS speaks, to no sink or file of the block's own."""
    speaks = re.search(r"\.(speak|speak_streamed|feed)\(|\bspeak_iter\(|\bstream_chat\(", code)
    elsewhere = re.search(r"Sink\(|set_default_output|synth_to_|sink=", code)
    return "TTS(" in code and bool(speaks) and not elsewhere


@pytest.fixture(scope="module")
def rig_env(jack_device, tmp_path_factory) -> dict[str, str]:
    """An environment whose ALSA default device plays into the JACK rig's speaker."""
    conf = tmp_path_factory.mktemp("alsa") / "default-is-the-rig.conf"
    conf.write_text(f'pcm.!default {{ type plug slave.pcm "{jack_device.name}" }}\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "OPENAI_", "VOICEKIT_"))}
    # jack_device has pointed JACK_DEFAULT_SERVER and ALSA_CONFIG_PATH (the rig's PCM) at its jackd
    env["ALSA_CONFIG_PATH"] = f"{os.environ['ALSA_CONFIG_PATH']}:{conf}"
    return env


@pytest.fixture(scope="module")
def voicekit_url() -> Iterator[str]:
    """A real ``voicekit serve`` (eSpeak) on 127.0.0.1, for the blocks that read VOICEKIT_URL."""
    pytest.importorskip("starlette", reason="needs the server: pip install -e '.[serve]'")
    from tests.fixtures.web import server_process

    with server_process([sys.executable, "-m", "voicekit", "serve", "--engine", "espeak"]) as (url, _):
        yield url


def _block_env(block: Block, request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    env = dict(request.getfixturevalue("rig_env"))
    polly = request.getfixturevalue("fake_polly")
    polly.piece_interval = 0.0
    env.update(
        AWS_ACCESS_KEY_ID="AKIDTEST",
        AWS_SECRET_ACCESS_KEY="test-secret",
        AWS_DEFAULT_REGION="eu-west-1",
        AWS_ENDPOINT_URL=polly.url,
        AWS_EC2_METADATA_DISABLED="true",
        AWS_CONFIG_FILE=str(tmp_path / "aws-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "aws-credentials"),
        OPENAI_API_KEY="test-key",
        VOICEKIT_LLM_MODEL="fake-model",
    )
    # OPENAI_BASE_URL is the SDK's one variable: the fake speech server for OpenAI TTS, else the fake LLM
    if re.search(r"\bOpenAI(TTS|Client)\b", block.code):
        env["OPENAI_BASE_URL"] = f"{request.getfixturevalue('fake_openai').url}/v1"
    else:
        llm = request.getfixturevalue("fake_llm")
        llm.delay = 0.01
        env["OPENAI_BASE_URL"] = llm.base_url
    if "VOICEKIT_URL" in block.code:
        env["VOICEKIT_URL"] = request.getfixturevalue("voicekit_url")
    return env


@pytest.mark.parametrize("block", [pytest.param(b, id=b.id) for b in BLOCKS])
def test_python_block_runs(block, request, tmp_path, jack_device):
    if block.not_run:
        pytest.skip(f"marked not run: {block.not_run}")
    pytest.importorskip("espeakng_loader", reason="the blocks speak with eSpeak NG: pip install -e '.[espeak]'")
    env = _block_env(block, request, tmp_path)
    script = tmp_path / "block.py"
    script.write_text(block.code, encoding="utf-8")
    with JackRecorder(jack_device) as speaker:
        proc = subprocess.run(
            [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
            timeout=BLOCK_TIMEOUT,
        )
    assert proc.returncode == 0, f"{block.id} failed:\n{proc.stdout}\n{proc.stderr}"
    assert "Traceback" not in proc.stderr, proc.stderr
    heard = sum(frames for _, frames in speaker.audible_cycles()) / jack_device.samplerate
    if _speaks(block.code):
        assert heard > 0.3, f"{block.id} speaks, but the device played {heard:.2f} s of sound"
    else:
        assert heard == 0, f"{block.id} writes its audio elsewhere, but the device played {heard:.2f} s"
