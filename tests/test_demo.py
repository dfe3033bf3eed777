import io

from rich.console import Console

from medledger.demo import run_demo


def test_demo_tells_the_whole_story_and_every_check_passes() -> None:
    out = io.StringIO()
    run_demo(Console(file=out, width=200))
    text = out.getvalue()
    assert text.count("✓") == 21
    assert "All checks passed" in text
    for step in ("after 2 of 3 approve", "audit shows the read", "revoked grant releases no key",
                 "Break-glass", "HbA1c below 6.5 %", "relabelled in the vault is caught",
                 "whatever records it names", "verifier cannot write into the chart"):
        assert step in text, step
