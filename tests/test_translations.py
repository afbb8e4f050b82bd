"""Spanish-speaking staff see Spanish pages, messages, form errors and canvas problems."""

from pathlib import Path

import polib
import pytest
from django.contrib.messages import get_messages
from django.urls import reverse
from django.utils import translation

from task_admin import canvas
from task_admin.i18n import translated
from task_admin.validation import check_spec
from tests.admin.test_invocations_admin import ADD_URL
from tests.admin.test_invocations_admin import form_data as invocation_form
from tests.admin.test_workflows_admin import form_data, stored
from tests.support.factories import SUMA, invocation, workflow

LOCALE = Path(__file__).resolve().parent.parent / "task_admin" / "locale"
ES = {"HTTP_ACCEPT_LANGUAGE": "es"}


@pytest.fixture(autouse=True)
def back_to_english():
    yield
    translation.activate("en-us")


@pytest.mark.parametrize("language", ["es", "en"])
def test_catalogue_is_complete_and_compiled(language):
    po = polib.pofile(str(LOCALE / language / "LC_MESSAGES" / "django.po"))
    assert len(po) > 400
    assert not po.fuzzy_entries()
    if language == "es":
        assert not po.untranslated_entries(), [e.msgid for e in po.untranslated_entries()]
    mo = polib.mofile(str(LOCALE / language / "LC_MESSAGES" / "django.mo"))
    compiled = {(e.msgid, e.msgstr, tuple(sorted(e.msgstr_plural.items()))) for e in mo}
    written = {
        (e.msgid, e.msgstr, tuple(sorted(e.msgstr_plural.items())))
        for e in po.translated_entries()
    }
    assert written <= compiled, "run `make messages` to compile the catalogue"


def broken_chain():
    # Alone, suma(4, 5) binds; as the chain's second step it also receives the previous result.
    return workflow("cadena", ("chain", [invocation(SUMA, [1, 1]), invocation(SUMA, [4, 5])]))


@pytest.mark.django_db
def test_pages_messages_and_canvas_problems_follow_the_browsers_language(admin_client):
    wf = broken_chain()
    page = admin_client.get(reverse("admin:task_admin_workflow_changelist"), **ES)
    text = page.content.decode()
    assert "Flujos de trabajo de Celery" in text
    assert "Duplicar los flujos de trabajo seleccionados" in text

    change = reverse("admin:task_admin_workflow_change", args=[wf.pk])
    response = admin_client.post(change, form_data(stored(wf), name="cadena"), **ES)
    assert response.status_code == 302
    messages = [str(m) for m in get_messages(response.wsgi_request)]
    assert any("se guardó como borrador con 1 problema" in m for m in messages), messages
    # A canvas problem, with the canvas's own wording of the parent result, in Spanish.
    assert any(
        "no admite estos argumentos" in m and "contando el resultado anterior" in m
        for m in messages
    ), messages
    page = admin_client.get(change, **ES).content.decode()
    assert "no admite estos argumentos" in page
    assert "cannot take these arguments" not in page

    run_page = admin_client.get(reverse("admin:task_admin_workflow_run", args=[wf.pk]), **ES)
    text = run_page.content.decode()
    assert "Este flujo de trabajo es un borrador: 1 problema impide ejecutarlo" in text
    assert "no admite estos argumentos" in text


@pytest.mark.django_db
def test_language_code_es_gives_spanish_form_errors(admin_client, settings):
    settings.LANGUAGE_CODE = "es"
    response = admin_client.post(ADD_URL, invocation_form(task="celery.backend_cleanup"))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors["task"]
    assert "no es una tarea que se pueda ejecutar desde el admin" in errors[0]
    assert 'TASK_ADMIN["DENIED_TASKS"]' in errors[0]
    response = admin_client.post(ADD_URL, invocation_form(args="[1, 2"))
    assert "Introduzca JSON válido." in response.context["adminform"].form.errors["args"]
    page = admin_client.get(reverse("admin:task_admin_workflowrun_changelist"))
    assert "ejecuciones de flujos de trabajo" in page.content.decode().lower()


def test_canvas_problems_are_translated_at_the_boundary():
    spec = canvas.Chain((canvas.Task(SUMA, (1, 1)), canvas.Task(SUMA, (4, 5))))
    tasks = {SUMA: __import__("inspect").signature(lambda a, b: None)}
    english = canvas.validate(spec, tasks=tasks)
    assert "cannot take these arguments" in english[0].message  # the canvas speaks English
    with translation.override("es"):
        [problem] = check_spec(spec, tasks=tasks)
        with pytest.raises(canvas.SpecError) as spec_error:
            canvas.from_dict({"version": 9})
        assert translated(spec_error.value.message).startswith("versión de especificación")
    assert problem.path == "root.1"
    assert problem.message.startswith(f"{SUMA}(a, b) no admite estos argumentos")
    assert "contando el resultado anterior" in problem.message
