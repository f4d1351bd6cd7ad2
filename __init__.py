from . import exceptions
from . import cli
from . import controllers
from . import models
from . import wizards
from .hooks import post_init_hook
