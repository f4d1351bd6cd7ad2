from . import construction_external_system
from . import construction_external_id
from . import maintenance_equipment
from . import maintenance_request
