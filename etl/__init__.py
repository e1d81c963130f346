"""smarticks-etl: back up, export and migrate a Smarticks helpdesk through its REST API."""

__version__ = "0.1.0"
