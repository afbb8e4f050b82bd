import pytest
from django.core import mail

from project.demo import tasks

# About the demo's own tasks: the demo project installed.
pytestmark = pytest.mark.usefixtures("demo_project")


@pytest.fixture
def sales_csv(settings, tmp_path):
    settings.EXAMPLE_DATA_DIR = str(tmp_path)
    (tmp_path / "sales.csv").write_text("region,amount\nnorth,120\nsouth,80\neast,45\nwest,55\n")


def test_process_file_sums_a_column(sales_csv):
    assert tasks.process_file("sales.csv") == {"file": "sales.csv", "rows": 4, "total": 300.0}
    assert tasks.file_total("sales.csv") == 300.0


def test_sum_list_adds_nested_lists():
    assert tasks.sum_list([7, [4, 6]]) == 17


@pytest.mark.parametrize("name", ["../tasks.py", "/etc/passwd", "../../setup.cfg"])
def test_process_file_stays_in_its_directory(sales_csv, name):
    with pytest.raises(ValueError, match="not a file in the data directory"):
        tasks.process_file(name)


def test_send_report_email_uses_djangos_mail(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    assert tasks.send_report_email("ops@example.com", "Report") == 1
    assert mail.outbox[0].to == ["ops@example.com"]
