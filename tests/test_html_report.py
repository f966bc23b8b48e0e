"""`symcompile show --html`: a self-contained page with the graph drawn, the formulas
typeset and the code; rendered in headless Chromium."""

from __future__ import annotations

import html.parser
import os
import shutil
import struct
import subprocess
import zlib

import pytest
from conftest import ROOT

import symcompile as nn
import symcompile.functions as F
import symcompile.parametric_functions as PF
from symcompile.display import html_report
from symcompile.tools.cli import main
from symcompile.tools.model_file import load_loss

DIGITS = ROOT / "examples" / "digits_mlp.py"
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
# CI installs Chromium and sets this, so the rendering test cannot silently skip there.
REQUIRE_BROWSER = os.environ.get("SYMCOMPILE_REQUIRE_BROWSER") == "1"


class Elements(html.parser.HTMLParser):
    """Every start tag with its attributes, and the page's text."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)

    def count(self, tag: str) -> int:
        return sum(1 for t, _ in self.tags if t == tag)


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return nn.compile(load_loss(str(DIGITS)), name="digits_page",
                      output_dir=tmp_path_factory.mktemp("html"))


def test_page_has_the_graph_the_formulas_and_the_code(digits):
    page = html_report.render_page(digits)
    elements = Elements(page)
    graph = digits.graph
    assert elements.count("svg") == 1
    assert elements.count("g") == len(graph.values)  # one box per value
    assert elements.count("rect") == len(graph.values)
    assert elements.count("path") == 1 + sum(len(n.inputs) for n in graph.nodes)  # + arrowhead
    assert elements.count("math") == len(digits.program.derivatives) == 6
    assert elements.count("mfrac") >= 6
    text = "".join(elements.text)
    assert "def gradient(" in text and "d loss / d mlp/affine1/affine/W = " in text
    assert digits.source.splitlines()[0] in text  # the whole module, in its <details>


def test_page_loads_nothing_from_outside(digits):
    page = html_report.render_page(digits)
    elements = Elements(page)
    for tag, attrs in elements.tags:
        assert tag not in ("script", "link", "img", "iframe", "object", "embed"), tag
        for name in ("src", "href", "xlink:href", "srcset", "action"):
            assert attrs.get(name) is None or attrs[name].startswith("#"), (tag, attrs)
    assert "@import" not in page and "url(" not in page.replace("url(#arrow)", "")


def test_hostile_names_are_escaped(tmp_path):
    nn.clear_parameters()
    x = nn.Variable((4, 3))
    x.name = "</svg><script>alert(1)</script>"
    with nn.parameter_scope("a & b <c>"):
        y = PF.affine(x, 2)
    loss = F.mean(y)
    loss.name = "l'o\"ss"
    page = html_report.render_page(nn.compile(loss, output_dir=tmp_path))
    elements = Elements(page)
    assert elements.count("script") == 0 and elements.count("svg") == 1
    assert "a &amp; b &lt;c&gt;/affine/W" in page
    assert "<c>" not in page and "</svg><script>" not in page
    assert "a & b <c>/affine/W" in "".join(elements.text)


def test_layout_keeps_boxes_apart_and_arrows_pointing_down(digits):
    picture = html_report.layout(digits.graph)
    rows: dict[float, list] = {}
    for box in picture.boxes:
        rows.setdefault(box.y, []).append(box)
        assert box.x + box.width <= picture.width and box.y + 36 <= picture.height
    for boxes in rows.values():
        boxes.sort(key=lambda b: b.x)
        for left, right in zip(boxes, boxes[1:], strict=False):
            assert left.x + left.width < right.x
    assert all(edge.y2 > edge.y1 for edge in picture.edges)
    rows_of = html_report.layers(digits.graph)
    for node in digits.graph.nodes:  # parameters sit in the row just above their layer
        assert all(rows_of[i] < rows_of[node.output] for i in node.inputs)
    weight = next(v for v in digits.graph.values if v.name == "mlp/classifier/affine/W")
    user = next(n for n in digits.graph.nodes if weight.index in n.inputs)
    assert rows_of[weight.index] == rows_of[user.output] - 1


def test_cli_writes_the_page_atomically(tmp_path, capsys):
    out = tmp_path / "pages" / "page.html"
    out.parent.mkdir()
    out.write_text("old")
    assert main(["show", str(DIGITS), "--html", str(out), "--color", "never"]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    assert out.read_text().startswith("<!DOCTYPE html>")
    assert [p.name for p in out.parent.iterdir()] == ["page.html"]  # no temporary left


def _browser() -> str | None:
    for name in BROWSERS:
        if shutil.which(name):
            return shutil.which(name)
    if REQUIRE_BROWSER:
        pytest.fail("SYMCOMPILE_REQUIRE_BROWSER=1 but no Chromium was found")
    pytest.skip("headless Chromium is not installed (CI installs it)")


def _run_browser(browser: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-extensions", "--hide-scrollbars",
         "--window-size=1280,2000", *args],
        capture_output=True, text=True, timeout=120)


def _png_pixels(path) -> tuple[int, int, int, list[bytes]]:
    """Width, height, bytes per pixel and unfiltered rows of an 8-bit RGB(A) PNG."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    position, idat, header = 8, b"", None
    while position < len(data):
        length, kind = struct.unpack(">I4s", data[position:position + 8])
        chunk = data[position + 8:position + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", chunk)
        elif kind == b"IDAT":
            idat += chunk
        position += 12 + length
    width, height, depth, colour, _, _, interlace = header
    assert depth == 8 and colour in (2, 6) and interlace == 0
    step = 3 if colour == 2 else 4
    raw, stride, rows, previous = zlib.decompress(idat), width * step, [], bytes(width * step)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1:start + 1 + stride])
        for i in range(stride):
            left = line[i - step] if i >= step else 0
            up, corner = previous[i], previous[i - step] if i >= step else 0
            if kind == 1:
                line[i] = (line[i] + left) & 255
            elif kind == 2:
                line[i] = (line[i] + up) & 255
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 255
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                line[i] = (line[i] + (left if pa <= pb and pa <= pc else up if pb <= pc
                                      else corner)) & 255
        rows.append(bytes(line))
        previous = line
    return width, height, step, rows


def test_page_renders_in_headless_chromium(digits, tmp_path):
    browser = _browser()
    page = tmp_path / "digits.html"
    html_report.write_page(digits, page)

    shot = tmp_path / "shot.png"
    done = _run_browser(browser, f"--screenshot={shot}", page.as_uri())
    assert shot.is_file(), done.stderr[-2000:]
    width, height, step, rows = _png_pixels(shot)
    colours = {row[i:i + 3] for row in rows[::2] for i in range(0, width * step, step * 2)}
    assert bytes.fromhex("fff2d9") in colours  # parameter boxes of the graph picture
    assert bytes.fromhex("e3f0ff") in colours  # input boxes

    # The same page with a probe appended: it measures what the browser laid out.
    probe = tmp_path / "probe.html"
    probe.write_text(page.read_text().replace("</body>", """<script>
      const fraction = document.querySelector("mfrac").getBoundingClientRect();
      const line = parseFloat(getComputedStyle(document.body).fontSize);
      const svg = document.querySelector("svg").getBoundingClientRect();
      document.body.setAttribute("data-probe", [fraction.height / line, svg.width,
        svg.height, document.querySelectorAll("svg rect").length].join(" "));
    </script></body>"""))
    done = _run_browser(browser, "--dump-dom", probe.as_uri())
    values = done.stdout.split('data-probe="', 1)[1].split('"', 1)[0].split()
    fraction_lines, svg_width, svg_height, boxes = map(float, values)
    assert fraction_lines > 1.5  # the fractions are typeset: numerator over denominator
    assert svg_width > 300 and svg_height > 300 and boxes == len(digits.graph.values)


def test_formulas_keep_the_brackets_after_a_minus_sign(tmp_path):
    """d loss/d b = mean(-2*(y_true - (a*x + b))): the page showed y_true - a x + b."""
    result = nn.compile(load_loss(str(ROOT / "examples" / "linear_regression.py")),
                        name="lin_page", output_dir=tmp_path)
    page = html_report.render_page(result)
    residual = ("<mi>y_true</mi><mo>-</mo><mrow><mo>(</mo><mrow><mrow><mi>a</mi>"
                "<mo>&InvisibleTimes;</mo><mi>x</mi></mrow><mo>+</mo><mi>b</mi></mrow>"
                "<mo>)</mo></mrow>")
    assert page.count(residual) == 2  # in d loss/d a and d loss/d b
