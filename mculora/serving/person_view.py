"""The page's *Adapt to me* step: enrolment into the browser session's profile, and what the profile holds.

The profile lives in the session's ``gr.State`` only: nothing about a person is written on the server.
"""

from __future__ import annotations

import gradio as gr

from mculora.person import PersonProfile
from mculora.serving.friendly_errors import friendly_errors
from mculora.serving.predictor import Predictor


def profile_status(profile: PersonProfile | None, session_min: int) -> str:
    """What the session's profile holds, and what it changes, in a line or two."""
    if profile is None:
        return "No profile: every prediction is the model's own reading."
    counts = profile.counts()
    calm = ", ".join(f"{name} ({count})" for name, count in counts["calm"].items())
    session = max(counts["session"].values(), default=0)
    lines = [
        f"**Profile** from your calm recording: {calm or 'nothing'}; {session} of your later inputs added.",
        f"Faces are read relative to your calm face; voices relative to yours from {session_min} of your inputs on.",
        *(f"- {note}" for note in profile.notes),
    ]
    return "\n\n".join(lines)


class ProfileCallbacks:
    """The events of the *Adapt to me* step, and the profile's status line for the other views."""

    def __init__(self, predictor: Predictor):
        self.predictor = predictor

    def enrolled(self, clip) -> PersonProfile | None:
        """An API call's enrolment clip -> its profile (None: no clip)."""
        if clip is None or clip == "":
            return None
        if not isinstance(clip, str):
            raise gr.Error(f"enrolment must be a video or audio file, not {str(clip)[:40]!r}")
        return self.predictor.enrol(clip=clip)

    @friendly_errors
    def enrol_view(self, clip, image, audio):
        """The *Adapt to me* step: a profile from the recording (or the face image and voice file), and what was
        read. Returns: profile (state), face crop, voice levels, status, the switch to use it (on)."""
        profile = self.predictor.enrol(clip=clip or None, image=image or None, audio=audio or None)
        for note in profile.notes:
            gr.Warning(note)
        capture = profile.capture
        levels = ", ".join(f"{level:.0f}" for level in capture.segment_levels_dbfs)
        voice = (
            f"{capture.speech_s:.1f} s of speech in {len(capture.segment_levels_dbfs)} pieces (level, dBFS: {levels})"
        )
        return (
            profile,
            capture.face_crop,
            voice if capture.segment_levels_dbfs else "no voice",
            self.status(profile),
            True,
        )

    def status(self, profile: PersonProfile | None) -> str:
        return profile_status(profile, self.predictor.reference.session_min if self.predictor.reference else 0)

    def forget_profile(self):
        """Drop the session's profile: profile, face crop, voice levels, status, switch."""
        return None, None, "", self.status(None), False
