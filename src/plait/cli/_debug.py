"""``plait debug RUN STEP``: call one step on the exact inputs it had in a recorded run,
optionally under pdb, stopping at the first line of the step's function."""

from __future__ import annotations

import traceback
from typing import TYPE_CHECKING, Any

import click

from plait.cli._errors import EXIT_FAILED, EXIT_OK, CommandError
from plait.cli._main import common, open_store, store_option

if TYPE_CHECKING:
    from plait.pipeline import Pipeline
    from plait.store.store import Store

__all__ = ["debug_command"]


@click.command("debug")
@click.argument("run_id", metavar="RUN")
@click.argument("step")
@click.option("-t", "--target", required=True, help="The pipeline the run was made with.")
@click.option("--pdb", "use_pdb", is_flag=True, help="Stop in pdb at the step's first line.")
@store_option
@common
def debug_command(run_id: str, step: str, target: str, use_pdb: bool, store: str | None) -> int:
    """Call STEP in this process on the exact inputs it had in RUN and print its value."""
    from plait.cli._history import resolve_run
    from plait.cli._target import load_pipeline
    from plait.errors import PlaitError

    pipeline = load_pipeline(target)
    chosen = open_store(store, must_exist=True)
    full = resolve_run(chosen, run_id)
    if step not in pipeline.steps:
        from plait.errors import suggest

        raise CommandError(
            f"pipeline {pipeline.name!r} has no step {step!r}{suggest(step, pipeline.steps)}",
            f"its steps: {', '.join(pipeline.steps)}",
        )
    from plait.run.context import StepContext, reset_context, set_context

    token = set_context(StepContext(run_id=full, step=step))  # current() works in the step
    try:
        if use_pdb:
            value = _under_pdb(pipeline, full, step, chosen)
        else:
            value = pipeline.debug(full, step, store=chosen)
    except PlaitError:
        raise
    except Exception as exc:  # the step's own error: that is what is being debugged
        click.echo(f"step {step!r} raised {type(exc).__name__}: {exc}", err=True)
        click.echo(_step_traceback(exc, pipeline.steps[step].func), err=True)
        if use_pdb:
            import pdb

            pdb.post_mortem(exc.__traceback__)
        return EXIT_FAILED
    finally:
        reset_context(token)
    from plait.cli._running import format_value

    click.echo(f"{step} = {format_value(value)}")
    return EXIT_OK


def _step_traceback(exc: BaseException, func: Any) -> str:
    """The traceback from the step's own frame on (plait's frames above it left out)."""
    import inspect

    code = getattr(inspect.unwrap(func), "__code__", None)
    frame = exc.__traceback__
    while frame is not None and frame.tb_frame.f_code is not code:
        frame = frame.tb_next
    lines = traceback.format_exception(type(exc), exc, frame or exc.__traceback__)
    return "".join(lines).rstrip()


def _under_pdb(pipeline: Pipeline, run_id: str, step: str, store: Store) -> Any:
    """``pipeline.debug`` under pdb, stopping at the first line of the step's function."""
    import inspect
    import pdb
    import types

    class StepDebugger(pdb.Pdb):
        """Continues through plait's own code to the breakpoint in the step."""

        armed = False

        def user_line(self, frame: types.FrameType) -> None:
            if not self.armed:  # the first line traced is plait's: go on to the step
                self.armed = True
                self.set_continue()
                return
            super().user_line(frame)

    func = inspect.unwrap(pipeline.steps[step].func)
    code = getattr(func, "__code__", None)
    if code is None:
        raise CommandError(f"step {step!r} has no Python code to stop in ({func!r})")
    debugger = StepDebugger()
    message = debugger.set_break(
        code.co_filename, code.co_firstlineno, temporary=True, funcname=code.co_name
    )
    if message:
        raise CommandError(f"cannot stop in step {step!r}: {message}")
    click.echo(f"stopping in {code.co_name}() ({code.co_filename}:{code.co_firstlineno})")
    return debugger.runcall(pipeline.debug, run_id, step, store=store)
