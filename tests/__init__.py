from . import test_install
from . import test_external_id
from . import test_equipment
from . import test_security
from . import test_review
