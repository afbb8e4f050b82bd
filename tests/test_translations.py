"""Spanish-speaking staff see Spanish pages, messages, form errors and canvas problems, and the
app's scripts (the composer, the typed argument fields) speak Spanish too."""

import html
import json
import re
from pathlib import Path

import polib
import pytest
from django.contrib.messages import get_messages
from django.urls import reverse
from django.utils import translation

from task_admin import canvas
from task_admin.admin.catalogue import catalogue_version
from task_admin.i18n import translated
from task_admin.validation import check_spec
from tests.admin.test_invocations_admin import ADD_URL
from tests.admin.test_invocations_admin import form_data as invocation_form
from tests.admin.test_workflows_admin import form_data, stored
from tests.support.factories import SUMA, invocation, workflow

LOCALE = Path(__file__).resolve().parent.parent / "task_admin" / "locale"
SCRIPTS = LOCALE.parent / "static" / "task_admin"
ES = {"HTTP_ACCEPT_LANGUAGE": "es"}


@pytest.fixture(autouse=True)
def back_to_english():
    yield
    translation.activate("en-us")


@pytest.mark.parametrize(("domain", "size"), [("django", 400), ("djangojs", 80)])
@pytest.mark.parametrize("language", ["es", "en"])
def test_catalogue_is_complete_and_compiled(language, domain, size):
    po = polib.pofile(str(LOCALE / language / "LC_MESSAGES" / f"{domain}.po"))
    assert len(po) > size
    assert not po.fuzzy_entries()
    assert not po.metadata_is_fuzzy
    if language == "es":
        assert not po.untranslated_entries(), [e.msgid for e in po.untranslated_entries()]
    mo = polib.mofile(str(LOCALE / language / "LC_MESSAGES" / f"{domain}.mo"))
    compiled = {(e.msgid, e.msgstr, tuple(sorted(e.msgstr_plural.items()))) for e in mo}
    written = {
        (e.msgid, e.msgstr, tuple(sorted(e.msgstr_plural.items())))
        for e in po.translated_entries()
    }
    assert written <= compiled, "run `make messages` to compile the catalogue"


STRING = r'"((?:[^"\\]|\\.)*)"'  # a double-quoted JavaScript string literal


def script_messages() -> tuple[set, set]:
    """The ``gettext("…")`` and ``ngettext("…", "…", n)`` calls of the app's scripts; each call
    must have literal strings (``make messages`` cannot collect anything else)."""
    singular, plural = set(), set()
    for script in sorted(SCRIPTS.glob("*.js")):
        source = script.read_text()
        calls = re.findall(r"\bgettext\(", source)
        found = re.findall(rf"\bgettext\(\s*{STRING}\s*\)", source)
        assert len(found) == len(calls), f"{script.name}: a gettext() call without a literal"
        calls = re.findall(r"\bngettext\(", source)
        pairs = re.findall(rf"\bngettext\(\s*{STRING}\s*,\s*{STRING}\s*,", source)
        assert len(pairs) == len(calls), f"{script.name}: an ngettext() call without literals"
        singular |= {json.loads(f'"{text}"') for text in found}
        plural |= {(json.loads(f'"{one}"'), json.loads(f'"{many}"')) for one, many in pairs}
    return singular, plural


def test_every_message_of_the_scripts_is_in_the_javascript_catalogue():
    singular, plural = script_messages()
    assert len(singular) + len(plural) > 80
    po = polib.pofile(str(LOCALE / "es" / "LC_MESSAGES" / "djangojs.po"))
    catalogued = {e.msgid for e in po if not e.msgid_plural}
    catalogued_plural = {(e.msgid, e.msgid_plural) for e in po if e.msgid_plural}
    assert singular == catalogued, "run `make messages`"
    assert plural == catalogued_plural, "run `make messages`"


def scripts_of(response) -> list[str]:
    page = response.content.decode()
    return [html.unescape(src) for src in re.findall(r'<script src="([^"]+)"', page)]


def catalogue_then(scripts: list[str], *names: str) -> str:
    """The app's catalogue among ``scripts``, checked to come before each of ``names``."""
    [catalogue] = [src for src in scripts if "/jsi18n/?" in src and "/task_admin/" in src]
    for name in names:
        [script] = [src for src in scripts if src.endswith(f"task_admin/{name}")]
        assert scripts.index(catalogue) < scripts.index(script), scripts
    return catalogue


def in_catalogue(english: str, spanish: str) -> str:
    # JavaScriptCatalog writes the catalogue as JSON (non-ASCII escaped).
    return f"{json.dumps(english)}: {json.dumps(spanish)}"


@pytest.mark.django_db
def test_the_composer_page_loads_the_spanish_catalogue_before_its_scripts(admin_client):
    page = admin_client.get(reverse("admin:task_admin_workflow_add"), **ES)
    catalogue = catalogue_then(scripts_of(page), "arguments.js", "composer.js")
    assert catalogue.startswith(reverse("admin:task_admin_workflow_jsi18n"))
    assert "language=es" in catalogue
    # The admin's own catalogue (django.contrib.admin's strings) is still there.
    assert reverse("admin:jsi18n") in scripts_of(page)

    response = admin_client.get(catalogue, **ES)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/javascript")
    text = response.content.decode()
    assert in_catalogue("Workflow tree", "Árbol del flujo de trabajo") in text  # composer.js
    # arguments.js
    assert in_catalogue("enter a whole number", "introduzca un número entero") in text
    assert '"ready to run, %(count)s warning": [' in text  # plural forms
    assert "Flujos de trabajo de Celery" not in text  # only the scripts' domain


@pytest.mark.django_db
def test_language_code_es_gives_a_spanish_catalogue(admin_client, settings):
    settings.LANGUAGE_CODE = "es"
    page = admin_client.get(reverse("admin:task_admin_workflow_add"))
    catalogue = catalogue_then(scripts_of(page), "composer.js")
    text = admin_client.get(catalogue).content.decode()
    assert in_catalogue("task", "tarea") in text


@pytest.mark.django_db
def test_every_page_with_the_argument_fields_loads_the_catalogue_first(admin_client):
    for url in (
        ADD_URL,  # the invocation form's typed fields
        reverse("admin:task_admin_workflow_run", args=[broken_chain().pk]),  # run overrides
    ):
        page = admin_client.get(url, **ES)
        assert page.status_code == 200
        catalogue = catalogue_then(scripts_of(page), "arguments.js")
        assert admin_client.get(catalogue, **ES).status_code == 200
    # Where no script needs it, no catalogue is loaded.
    page = admin_client.get(reverse("admin:task_admin_workflow_changelist"), **ES)
    assert not [src for src in scripts_of(page) if "/task_admin/" in src and "jsi18n" in src]


@pytest.mark.django_db
def test_the_catalogue_is_cached_per_language_and_version(admin_client, client):
    url = reverse("admin:task_admin_taskinvocation_jsi18n")
    response = admin_client.get(url, **ES)
    assert response.status_code == 200
    assert "private" in response["Cache-Control"]
    assert "max-age=86400" in response["Cache-Control"]
    assert {"accept-language", "cookie"} <= {
        v.strip().lower() for v in response["Vary"].split(",")
    }
    etag = response["ETag"]
    assert catalogue_version() in etag and "es" in etag
    # Unchanged: the browser's copy is still good, no catalogue is built.
    assert admin_client.get(url, HTTP_IF_NONE_MATCH=etag, **ES).status_code == 304
    # Another language is another catalogue.
    english = admin_client.get(url, HTTP_IF_NONE_MATCH=etag, HTTP_ACCEPT_LANGUAGE="en")
    assert english.status_code == 200
    assert english["ETag"] != etag
    assert "Árbol" not in english.content.decode()
    # Staff only, like the admin's own catalogue.
    assert client.get(url).status_code == 302


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
