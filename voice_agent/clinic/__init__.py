"""The clinic: doctors, services, insurances, prices, hospitals, hours, from one YAML file."""

from voice_agent.clinic.loader import load_clinic_file, parse_clinic
from voice_agent.clinic.model import Clinic
from voice_agent.errors import ClinicFileError

__all__ = ["Clinic", "ClinicFileError", "load_clinic_file", "parse_clinic"]
