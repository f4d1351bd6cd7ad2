from . import telematics_mqtt
