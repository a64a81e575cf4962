"""The one exception type that means "the user gave us something wrong".

Everything the user can fix (a bad dataset name, a missing folder, a corrupt checkpoint, a number out of range)
raises `UserError` with a message that says what was wrong and what to do. The CLI prints that message on one line
and exits with status 2; the GUI shows it in a dialog. Anything else is a bug and keeps its traceback.
"""


class UserError(Exception):
    """A problem the user can fix; `str(err)` is the complete message shown to them."""
