"""The "Open in Colab" badge extension (book/_ext/colab_badge.py): its link, where it goes, which pages get it."""

import importlib.util
import pathlib
import types

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("colab_badge", ROOT / "book" / "_ext" / "colab_badge.py")
colab_badge = importlib.util.module_from_spec(spec)
spec.loader.exec_module(colab_badge)

THEME = {
    "repository_url": "https://github.com/molli-book/molli-book",
    "repository_branch": "v0.1.0",
    "path_to_docs": "",
    "launch_buttons": {"colab_url": "https://colab.research.google.com"},
}
BODY = '<section id="the-one-line"><h1>1. The one line<a class="headerlink" href="#">#</a></h1><p>Text</p><h2>A</h2></section>'


def _fake_app(source_suffix: str):
    env = types.SimpleNamespace(doc2path=lambda docname: str(ROOT / (docname + source_suffix)))
    return types.SimpleNamespace(env=env, config=types.SimpleNamespace(html_theme_options=THEME))


def _context():
    return {"body": BODY, "pathto": lambda name, resource=0: "../" + name}


def test_colab_url_is_the_theme_buttons_link():
    url = colab_badge.colab_url(THEME, "book/01_the_one_line")
    assert (
        url == "https://colab.research.google.com/github/molli-book/molli-book/blob/v0.1.0/book/01_the_one_line.ipynb"
    )
    assert colab_badge.colab_url({**THEME, "path_to_docs": "docs/"}, "a").endswith("/blob/v0.1.0/docs/a.ipynb")
    assert colab_badge.colab_url({**THEME, "repository_url": "https://gitlab.com/a/b"}, "a") is None
    assert colab_badge.colab_url({**THEME, "launch_buttons": {}}, "a") is None


def test_the_badge_goes_under_the_title_of_notebook_pages_only():
    ctx = _context()
    colab_badge._on_page_context(_fake_app(".ipynb"), "book/01_the_one_line", "page.html", ctx, doctree=object())
    body = ctx["body"]
    title_end, badge, first_section = body.find("</h1>"), body.find('class="colab-badge"'), body.find("<h2")
    assert title_end < badge < first_section
    assert (
        'href="https://colab.research.google.com/github/molli-book/molli-book/blob/v0.1.0/book/01_the_one_line.ipynb"'
        in body
    )
    assert 'src="../_static/images/logo_colab.png"' in body and "Open in Colab" in body
    again = dict(ctx)
    colab_badge._on_page_context(_fake_app(".ipynb"), "book/01_the_one_line", "page.html", again, doctree=object())
    assert again["body"].count('class="colab-badge"') == 1  # idempotent

    md = _context()
    colab_badge._on_page_context(_fake_app(".md"), "book/intro", "page.html", md, doctree=object())
    assert md["body"] == BODY  # Colab cannot open a Markdown page


def test_the_books_own_config_gives_the_release_link():
    """From _config.yml as Jupyter Book translates it: the repository URL and the release ref."""
    yaml = pytest.importorskip("yaml")
    cfg = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert cfg["sphinx"]["local_extensions"]["colab_badge"] == "book/_ext"
    from jupyter_book.config import get_final_config

    final, _ = get_final_config(
        user_yaml=ROOT / "_config.yml", sourcedir=ROOT, cli_config={"latex_individualpages": False}
    )
    assert "colab_badge" in final["extensions"]
    url = colab_badge.colab_url(final["html_theme_options"], "book/02_why_likelihood_struggles")
    assert url == (
        f"https://colab.research.google.com/github/{cfg['repository']['url'].split('github.com/')[1]}"
        f"/blob/{cfg['repository']['branch']}/book/02_why_likelihood_struggles.ipynb"
    )
