import io

from rich.console import Console

from medledger.demo import run_demo


def test_demo_tells_the_whole_story_and_every_check_passes() -> None:
    out = io.StringIO()
    run_demo(Console(file=out, width=200))
    text = out.getvalue()
    assert text.count("✓") == 15
    assert "All checks passed" in text
