from . import telematics_mqtt
from . import telematics_worker
