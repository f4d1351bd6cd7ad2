from . import test_install
from . import test_external_id
from . import test_equipment
from . import test_security
from . import test_review
from . import test_telematics_protocols
from . import test_telematics_http
from . import test_telematics_processing
