"""The stack a command talks to (the one the last `up` started) and waiting for it to answer."""

from __future__ import annotations

from musicpipe.manifest import Manifest, load_manifest
from musicpipe.stack import choice
from musicpipe.stack.compose import ComposeStack
from musicpipe.stack.embedded import EmbeddedStack
from musicpipe.stack.probe import NotRunning, await_up
from musicpipe.stack.settings import StackSettings, load_settings


def load_context() -> tuple[StackSettings, Manifest]:
    return load_settings(), load_manifest()


Stack = EmbeddedStack | ComposeStack
STACKS: dict[str, type[EmbeddedStack] | type[ComposeStack]] = {
    choice.EMBEDDED: EmbeddedStack,
    choice.COMPOSE: ComposeStack,
}


def current_stack() -> Stack:
    """The stack the last `up` started (or the one STACK forces; embedded if none yet)."""
    settings, manifest = load_context()
    kind = settings.stack
    if kind == choice.AUTO:
        kind = choice.recorded(settings.state_dir) or choice.EMBEDDED
    return STACKS[kind](settings, manifest)


# How long a command waits for a busy component before it gives up (`wait` uses its own).
ANSWER_TIMEOUT = 60.0


def require_running(stack: Stack, timeout: float = ANSWER_TIMEOUT, on_busy=None) -> None:
    """The local AWS answers: at once when it is not running, within ``timeout`` when busy."""
    await_up(
        f"the local AWS ({stack.settings.aws_endpoint})",
        stack.aws_probe,
        stack.aws_alive,
        timeout,
        on_busy=on_busy or (lambda message: None),
    )


def require_airflow(stack: Stack, timeout: float, on_busy=None) -> None:
    """Our own Airflow answers (another program may hold its port)."""
    what = f"Airflow ({stack.airflow.url})"
    if not stack.airflow.is_running():
        if isinstance(stack, EmbeddedStack) and not stack.settings.airflow:
            raise NotRunning(
                f"{what} is not running: this stack runs without it (MUSICPIPE_AIRFLOW=0 or "
                "[stack] airflow = false); turn it on and run `make up`"
            )
        raise NotRunning(f"{what} is not running; start it with `make up` (or `musicpipe up`)")
    await_up(
        what,
        stack.airflow.probe,
        stack.airflow.is_running,
        timeout,
        on_busy=on_busy or (lambda message: None),
    )
