"""An error's fix, spelled for whoever reads it: a parameter or a flag.

A library caller fixes ``ChecksumError`` by passing ``verify=False``; a
command-line user by adding ``--no-verify``. Each such fix is a
:class:`Remedy`, declared once below with both spellings. An error message
that names one is a :class:`Message` (text and remedies, in order); the error
carries it, ``str(exc)`` reads it with the parameters, and the command line
prints :func:`command_line_text`, which reads it with the flags.

Nothing here is borrowed: neither argparse nor scikit-learn maps a library's
parameters to a command line's flags in error messages.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Remedy", "Message", "error", "command_line_text", "NO_VERIFY", "ROOT",
           "EXISTING_ROOT", "SKIP_BAD", "COLOR"]


@dataclass(frozen=True)
class Remedy:
    """One fix, as a Python caller and as the command line apply it.

    Attributes
    ----------
    parameter : str
        The words for a library caller, e.g. ``"pass verify=False"``.
    flag : str
        The words on the command line, e.g. ``"add --no-verify"``.
    """

    parameter: str
    flag: str


#: Skip the MD5 check (a file made by the user in MedMNIST's format).
NO_VERIFY = Remedy("pass verify=False", "add --no-verify")
#: Point at the folder of the .npz files.
ROOT = Remedy("pass root=", "use --root")
#: A data root that does not exist: name an existing one, or none.
EXISTING_ROOT = Remedy("pass an existing folder as root=, or leave root out",
                       "give --root an existing folder, or leave --root out")
#: Leave out unreadable images (and images of a mixed folder's minority kind).
SKIP_BAD = Remedy("on_error='skip'", "--skip-bad")
#: Convert every image of a folder to one kind.
COLOR = Remedy("color='grayscale' or color='rgb'", "--color grayscale or --color rgb")


class Message:
    """Text with remedies in it, readable with either spelling.

    Parameters
    ----------
    *parts : str or Remedy
        Joined in order; each :class:`Remedy` is spelled when the message is
        read.
    """

    def __init__(self, *parts):
        self.parts = parts

    def render(self, spelling="parameter"):
        """The text, with each remedy's ``'parameter'`` or ``'flag'`` spelling."""
        return "".join(p if isinstance(p, str) else getattr(p, spelling) for p in self.parts)

    def __str__(self):
        return self.render()


def error(cls, message, **kwargs):
    """``cls(message read with parameters, **kwargs)``, keeping ``message`` for the command line.

    Parameters
    ----------
    cls : type of Exception
    message : Message
    **kwargs
        Passed to ``cls``.

    Returns
    -------
    exc : cls
        With ``exc.message`` set to ``message``.
    """
    exc = cls(message.render("parameter"), **kwargs)
    exc.message = message
    return exc


def command_line_text(exc):
    """What the command line prints for ``exc``: its message with flags, else ``str(exc)``."""
    message = getattr(exc, "message", None)
    return message.render("flag") if isinstance(message, Message) else str(exc)
