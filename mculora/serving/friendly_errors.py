"""The page's and the API's one way of failing: a reason a person can read, never a stack trace."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable

import gradio as gr

from mculora.person import ProfileError
from mculora.preprocess import UnusableInput
from mculora.serving.clip import ClipCancelled
from mculora.serving.enrolment import EnrolmentError
from mculora.serving.predictor import NothingToPredict, UnknownMethod
from mculora.serving.transcribe import TranscriptionError

log = logging.getLogger(__name__)


def friendly_errors(callback: Callable) -> Callable:
    """`NothingToPredict`, `UnknownMethod`, an unreadable clip -> `gr.Error` with the reason; anything unexpected ->
    a plain `gr.Error`, logged here."""

    @functools.wraps(callback)
    def wrapped(*args, **kwargs):
        try:
            return callback(*args, **kwargs)
        except gr.Error:
            raise
        except (
            NothingToPredict,
            UnknownMethod,
            UnusableInput,
            TranscriptionError,
            EnrolmentError,
            ProfileError,
        ) as error:
            raise gr.Error(str(error)) from None
        except ClipCancelled:
            log.info("%s: cancelled, the work stopped", callback.__name__)
            raise gr.Error("Scoring the clip was cancelled.") from None
        except Exception:
            log.exception("demo callback %s failed", callback.__name__)
            raise gr.Error("Something went wrong while scoring this input; please try another one.") from None

    return wrapped
