"""The kubetune trainer. Importing it silences the library notices no user can act on
(:mod:`kubetune_trainer.notices`) before any module of it imports the libraries."""

from kubetune_trainer import notices

notices.install()
