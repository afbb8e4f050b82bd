"""The composer in headless Chromium: whole trees built from an empty Add page, saved once."""

import inspect

import pytest
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from examples.tasks import sales_report
from task_admin.canvas.build import to_python
from task_admin.compile import workflow_to_spec
from task_admin.models import TaskInvocation, Workflow, WorkflowRun
from tests.support.browser import (
    add,
    argument,
    at,
    call,
    choose,
    login,
    save,
    start,
    submit,
    wait_preview,
)
from tests.support.factories import invocation

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def tutorial_invocations(project):
    suma = project.task("suma")
    return {
        "2+2": invocation(suma, [2, 2], name="2+2"),
        "4+4": invocation(suma, [4, 4], name="4+4"),
        "+4": invocation(suma, [4], name="+4"),
        "+10": invocation(suma, [10], name="+10"),
        "total": invocation(project.task("sum_list"), [], name="total"),
    }


def run_and_wait(browser, base, workflow):
    browser.get(f"{base}/admin/task_admin/workflow/{workflow.pk}/run/")
    submit(browser, (By.CSS_SELECTOR, "#workflow_run_form input[type=submit]"))
    run = WorkflowRun.objects.get(workflow=workflow)
    WebDriverWait(browser, 60, poll_frequency=0.3, ignored_exceptions=(
        StaleElementReferenceException, NoSuchElementException,
    )).until(lambda b: (run.refresh_from_db() or run.status) not in ("pending", "running"))
    return run


@pytest.mark.integration
def test_tutorial_group_chain_and_chord_each_in_one_save(browser, live_server, browser_worker,
                                                         shoot):
    """From an empty Add page and an empty database: each task picked in its node, its
    arguments typed in the signature's fields, each workflow saved once."""
    base = live_server.url
    login(browser, base)
    assert not TaskInvocation.objects.exists()

    start(browser, base, "tutorial group")
    add(browser, "group", where=None)
    add(browser, "task")
    call(browser, "root.0", "suma", a=2, b=2)
    add(browser, "task")
    call(browser, "root.1", "suma", a=4, b=4)
    wait_preview(browser, "group([suma.s(2, 2), suma.s(4, 4)])")
    save(browser)
    group = Workflow.objects.get(name="tutorial group")
    assert to_python(workflow_to_spec(group)) == "group([suma.s(2, 2), suma.s(4, 4)])"

    start(browser, base, "tutorial chain")
    add(browser, "chain", where=None)
    add(browser, "task")
    call(browser, "root.0", "suma", a=2, b=2)
    add(browser, "task")
    # The second step receives the first one's result: its "a" is that, only "b" is asked.
    call(browser, "root.1", "suma", b=4)
    assert "the previous result" in at(browser, "root.1").find_element(
        By.XPATH, "..").find_element(By.CSS_SELECTOR, ".ta-call-fields").text
    wait_preview(browser, "chain(suma.s(2, 2), suma.s(4))")
    assert "ready to run" in browser.find_element(By.ID, "ta-preview-state").text
    save(browser)
    chain = Workflow.objects.get(name="tutorial chain")
    assert to_python(workflow_to_spec(chain)) == "chain(suma.s(2, 2), suma.s(4))"

    start(browser, base, "tutorial chord")
    add(browser, "chord", where=None)
    add(browser, "task", where="root", slot="header")
    call(browser, "root.header.0", "suma", a=2, b=2)
    add(browser, "task", where="root", slot="header")
    call(browser, "root.header.1", "suma", a=4, b=4)
    add(browser, "task", where="root", slot="body")
    call(browser, "root.body", "suma", b=10)
    wait_preview(browser, "suma.s(10)")
    # Before running: the body receives the header's list, shown next to the body's node.
    body_warning = WebDriverWait(browser, 10).until(
        lambda b: at(b, "root.body").find_element(By.CSS_SELECTOR, "li.ta-level-warning"))
    assert "receives the list of header results first" in body_warning.text
    browser.execute_script("document.getElementById('workflow-preview').scrollIntoView()")
    wait_preview(browser, "ready to run")
    shoot("composer_chord_warning")
    save(browser)
    chord = Workflow.objects.get(name="tutorial chord")
    assert "suma.s(10)" in to_python(workflow_to_spec(chord))
    # One invocation per distinct call, made by the saves.
    assert TaskInvocation.objects.count() == 4  # 2+2, 4+4, then 4 and 10

    assert run_and_wait(browser, base, group).nodes.count() == 2
    group_run = WorkflowRun.objects.get(workflow=group)
    assert group_run.status == "succeeded"
    assert [n.result for n in group_run.nodes.order_by("position")] == [4, 8]
    chain_run = run_and_wait(browser, base, chain)
    assert chain_run.status == "succeeded"
    assert [n.result for n in chain_run.nodes.order_by("position")][-1] == 8


@pytest.mark.usefixtures("browser_project")
def test_typed_fields_in_a_task_node(browser, live_server, shoot):
    """A task's annotated parameters as typed fields in its node; a call that does not fit
    its place is said next to the node by the server, then fixed."""
    base = live_server.url
    login(browser, base)
    start(browser, base, "monday report")
    add(browser, "group", where=None)
    add(browser, "task")
    call(browser, "root.0", "sales_report", region="US", top=5, include_refunds="true")
    assert argument(browser, "root.0", "day").get_attribute("type") == "date"
    assert argument(browser, "root.0", "top").get_attribute("type") == "number"
    assert argument(browser, "root.0", "region").tag_name == "select"
    assert "count refunded sales too." in at(browser, "root.0").find_element(
        By.XPATH, "..").text
    browser.execute_script(
        "arguments[0].value = '2026-11-02';"
        "arguments[0].dispatchEvent(new Event('input', {bubbles: true}));",
        argument(browser, "root.0", "day"))
    add(browser, "task")
    call(browser, "root.1", "suma", b=2)  # "a" left out: a group member receives nothing
    problem = WebDriverWait(browser, 15, ignored_exceptions=(StaleElementReferenceException,)
                            ).until(lambda b: at(b, "root.1").find_element(
                                By.CSS_SELECTOR, ".ta-node-problems li"))
    assert "missing a required argument: 'a'" in problem.text
    argument(browser, "root.1", "a").send_keys("2")
    # Raw JSON stays one click away, and back.
    node = at(browser, "root.1").find_element(By.XPATH, "..")
    node.find_element(By.CSS_SELECTOR, "button[data-action=as-json]").click()
    area = WebDriverWait(browser, 5, ignored_exceptions=(StaleElementReferenceException,)).until(
        lambda b: at(b, "root.1").find_element(By.XPATH, "..").find_element(
            By.CSS_SELECTOR, "textarea[data-json=args]"))
    assert area.get_attribute("value") == "[2,2]"
    at(browser, "root.1").find_element(By.XPATH, "..").find_element(
        By.CSS_SELECTOR, "button[data-action=as-fields]").click()
    WebDriverWait(browser, 5, ignored_exceptions=(StaleElementReferenceException,)).until(
        lambda b: argument(b, "root.1", "a").get_attribute("value") == "2")
    wait_preview(browser, "ready to run")
    wait_preview(browser, "suma.s(2, 2)")
    shoot("composer")
    save(browser)
    wf = Workflow.objects.get(name="monday report")
    report = wf.nodes.get(position=0, parent__isnull=False).invocation
    bound = inspect.signature(sales_report).bind(*report.args, **report.kwargs).arguments
    assert bound == {"day": "2026-11-02", "region": "US", "top": 5, "include_refunds": True}


def test_a_nested_chord_in_one_save(browser, live_server, browser_project, shoot):
    base = live_server.url
    login(browser, base)
    tutorial_invocations(browser_project)
    start(browser, base, "nested chord")
    add(browser, "chord", where=None)
    add(browser, "chain", where="root", slot="header")
    add(browser, "task", where="root.header.0")
    choose(browser, "root.header.0.0", "2+2")
    add(browser, "task", where="root.header.0")
    choose(browser, "root.header.0.1", "+4")
    add(browser, "group", where="root", slot="header")
    add(browser, "task", where="root.header.1")
    choose(browser, "root.header.1.0", "4+4")
    add(browser, "task", where="root.header.1")
    choose(browser, "root.header.1.1", "2+2")
    add(browser, "chain", where="root", slot="body")
    add(browser, "task", where="root.body")
    choose(browser, "root.body.0", "total")
    wait_preview(browser, "sum_list.s()")
    # At 1400 px nothing runs off the right edge (the old node table did).
    assert browser.execute_script(
        "return document.documentElement.scrollWidth <= window.innerWidth"
    )
    shoot("composer_nested")
    save(browser)
    wf = Workflow.objects.get(name="nested chord")
    assert wf.nodes.count() == 9
    text = " ".join(to_python(workflow_to_spec(wf)).split())
    assert text.startswith("chord( [ chain(suma.s(2, 2), suma.s(4)), group([suma.s(4, 4), "
                           "suma.s(2, 2)]), ], chain(sum_list.s()),")


def focused(browser):
    return browser.switch_to.active_element


def tab_to(browser, predicate, limit=60, back=False):
    """Press Tab (Shift+Tab when ``back``) until ``predicate(active element)``, as a person
    would."""
    seen = []
    for _ in range(limit):
        if predicate(focused(browser)):
            return focused(browser)
        seen.append(focused(browser).get_attribute("outerHTML")[:80])
        focused(browser).send_keys(*((Keys.SHIFT, Keys.TAB) if back else (Keys.TAB,)))
    raise AssertionError("never reached by Tab: " + "\n".join(seen))


def is_button(kind, where=None):
    def check(element):
        if element.get_attribute("data-kind") != kind:
            return False
        if where is None:
            return True
        row = element.find_element(By.XPATH, "ancestor::li[1]")
        return row.get_attribute("data-path") == where
    return check


def test_a_workflow_built_with_the_keyboard_only(browser, live_server, browser_project):
    base = live_server.url
    login(browser, base)
    tutorial_invocations(browser_project)
    browser.get(f"{base}/admin/task_admin/workflow/add/")
    browser.find_element(By.NAME, "name").send_keys("by keyboard")  # focus from the page's load

    tab_to(browser, is_button("chain")).send_keys(Keys.ENTER)
    tab_to(browser, is_button("task", "root")).send_keys(Keys.ENTER)
    # Focus went to the new node's task field; its typed fields appear under it.
    focused(browser).send_keys("suma", Keys.TAB)
    tab_to(browser, lambda e: (e.get_attribute("id") or "").endswith("-a")).send_keys("4")
    tab_to(browser, is_button("task", "root")).send_keys(Keys.ENTER)
    # This one runs a saved invocation: "s" picks "saved invocation" in the node's select.
    focused(browser).send_keys(Keys.SHIFT, Keys.TAB)
    assert focused(browser).get_attribute("data-field") == "source"
    focused(browser).send_keys("s")
    WebDriverWait(browser, 5).until(
        lambda b: focused(b).get_attribute("data-field") == "source"
        and at(b, "root.1").find_elements(By.CSS_SELECTOR, "input[data-field=target]"))
    # The add page carries no invocation: the composer fetched the list to pick from.
    assert browser.find_element(By.ID, "ta-composer-tree").get_attribute(
        "data-invocations") == "loaded"
    assert browser.execute_script(
        "return document.getElementById('ta-invocations').options.length") >= 2
    focused(browser).send_keys(Keys.TAB)
    focused(browser).send_keys("2+2", Keys.TAB)
    # Wrong order: move the second step up with Alt+↑ from its row.
    WebDriverWait(browser, 5).until(lambda b: at(b, "root.1"))
    handle = tab_to(browser, lambda e: e.get_attribute("class") == "ta-handle"
                    and e.text == "root.1", back=True)
    handle.send_keys(Keys.ALT, Keys.ARROW_UP)
    WebDriverWait(browser, 5).until(
        lambda b: at(b, "root.0").find_element(By.CSS_SELECTOR, "input[data-field=target]")
        .get_attribute("value") == "2+2"
    )
    assert focused(browser).get_attribute("class") == "ta-handle"  # focus follows the node
    wait_preview(browser, "ready to run")
    # Save with Enter from the name field's neighbour: the form's default button.
    old = browser.find_element(By.TAG_NAME, "html")
    tab_to(browser, lambda e: e.get_attribute("name") == "_save").send_keys(Keys.ENTER)
    WebDriverWait(browser, 20).until(lambda b: old.id != b.find_element(By.TAG_NAME, "html").id)
    wf = Workflow.objects.get(name="by keyboard")
    assert to_python(workflow_to_spec(wf)) == "chain(suma.s(2, 2), suma.s(4))"


DRAG = """
var source = arguments[0], target = arguments[1], where = arguments[2];
var data = new DataTransfer(), box = target.getBoundingClientRect();
var at = {bubbles: true, cancelable: true, dataTransfer: data, clientX: box.left + 4,
          clientY: where === "before" ? box.top + 2 : box.bottom - 2};
source.dispatchEvent(new DragEvent("dragstart", {bubbles: true, dataTransfer: data}));
target.dispatchEvent(new DragEvent("dragover", at));
var marked = target.className;
target.dispatchEvent(new DragEvent("drop", at));
return marked;
"""


def drag(browser, path, target, where="after"):
    """Drag the node at ``path`` by its path button onto ``target`` (a row or an add bar), as
    the browser's drag and drop fires it; returns the class the target showed while over it."""
    handle = at(browser, path).find_element(By.CSS_SELECTOR, ".ta-handle")
    assert handle.get_attribute("draggable") == "true"
    return browser.execute_script(DRAG, handle, target, where)


def test_nodes_move_by_drag_and_drop(browser, live_server):
    base = live_server.url
    login(browser, base)
    start(browser, base, "dragged")
    add(browser, "group", where=None)
    add(browser, "task")
    call(browser, "root.0", "suma", a=1, b=1)
    add(browser, "chain")
    # The task onto the chain's add bar: it goes into the chain.
    bar = browser.find_element(By.CSS_SELECTOR, 'li[data-path="root.1"] > .ta-add')
    assert "ta-drop-into" in drag(browser, "root.0", bar)
    WebDriverWait(browser, 5, ignored_exceptions=(StaleElementReferenceException,)).until(
        lambda b: argument(b, "root.0.0", "a").get_attribute("value") == "1")
    add(browser, "task")
    call(browser, "root.1", "suma", a=2, b=2)
    # The new task onto the top half of the chain's row: it goes before the chain.
    assert "ta-drop-before" in drag(browser, "root.1", at(browser, "root.0"), "before")
    WebDriverWait(browser, 5, ignored_exceptions=(StaleElementReferenceException,)).until(
        lambda b: argument(b, "root.0", "a").get_attribute("value") == "2")
    # A container cannot go into itself.
    inner_bar = browser.find_element(By.CSS_SELECTOR, 'li[data-path="root.1"] > .ta-add')
    assert "ta-drop" not in drag(browser, "root.1", inner_bar)
    wait_preview(browser, "suma.s(1, 1)")
    save(browser)
    wf = Workflow.objects.get(name="dragged")
    assert " ".join(to_python(workflow_to_spec(wf)).split()) in (
        "group([suma.s(2, 2), chain(suma.s(1, 1))])", "group([suma.s(2, 2), suma.s(1, 1)])",
    )
    assert wf.nodes.filter(kind="chain").get().children.count() == 1


def test_the_composer_speaks_the_staff_members_language(browser, live_server):
    """In Spanish (the language cookie LocaleMiddleware reads), the app's JavaScript catalogue
    loads before composer.js and arguments.js: the buttons they draw and the typed fields'
    help are Spanish."""
    base = live_server.url
    login(browser, base)
    browser.add_cookie({"name": "django_language", "value": "es"})
    try:
        start(browser, base, "en español")
        bar = browser.find_element(By.CSS_SELECTOR, "#ta-composer-tree > .ta-add")
        assert bar.find_element(By.CSS_SELECTOR, ".ta-add-title").text == "Empezar con"
        kinds = [b.text for b in bar.find_elements(By.CSS_SELECTOR, "button[data-kind]")]
        assert kinds == ["+ tarea", "+ grupo", "+ cadena", "+ chord",
                         "+ flujo de trabajo reutilizado"]
        add(browser, "chain", where=None)
        add(browser, "task")
        call(browser, "root.0", "sales_report")
        assert "entero" in at(browser, "root.0").find_element(By.XPATH, "..").text  # top: int
        # One problem (no day): ngettext's singular, in Spanish.
        wait_preview(browser, "1 problema: se guarda como borrador")
    finally:
        browser.delete_cookie("django_language")
