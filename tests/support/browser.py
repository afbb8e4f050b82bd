"""What a person does in the admin, as Selenium steps shared by the browser tests."""

from django.contrib.auth import get_user_model
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import Select, WebDriverWait


def fill(browser, name, value):
    field = browser.find_element(By.NAME, name)
    field.clear()
    field.send_keys(value)


def submit(browser, locator):
    """Click and wait for the next page: click() returns before the browser navigates, so the
    next lookup could otherwise find an element of the old page that goes stale under it."""
    old_page = browser.find_element(By.TAG_NAME, "html")
    browser.find_element(*locator).click()
    WebDriverWait(browser, 20).until(expected_conditions.staleness_of(old_page))
    WebDriverWait(browser, 20).until(
        lambda b: b.execute_script("return document.readyState") == "complete"
    )


def login(browser, base):
    get_user_model().objects.create_superuser("staff", "staff@example.com", "pw-for-browser")
    browser.get(f"{base}/admin/login/")
    fill(browser, "username", "staff")
    fill(browser, "password", "pw-for-browser")
    submit(browser, (By.CSS_SELECTOR, "input[type=submit]"))


def at(browser, path):
    """The composer's row of the node at ``path``."""
    return browser.find_element(By.CSS_SELECTOR, f'li[data-path="{path}"] > .ta-crow')


def add(browser, kind, where="root", slot=None):
    """Click "+ kind" in the add bar of ``where`` (``slot``: header or body of a chord)."""
    if where is None:
        bar = browser.find_element(By.CSS_SELECTOR, "#ta-composer-tree > .ta-add")
    elif slot:
        bar = browser.find_element(
            By.CSS_SELECTOR, f'li[data-path="{where}"] > .ta-chord-{slot} > .ta-add'
        )
    else:
        bar = browser.find_element(By.CSS_SELECTOR, f'li[data-path="{where}"] > .ta-add')
    bar.find_element(By.CSS_SELECTOR, f'button[data-kind="{kind}"]').click()


def choose(browser, path, name):
    """Run a saved invocation at this task node: pick "saved invocation", then type the
    invocation's name into the node's field (the shared datalist offers it, once the
    composer has fetched the list)."""
    source = at(browser, path).find_element(By.CSS_SELECTOR, "select[data-field=source]")
    if source.get_attribute("value") != "invocation":
        Select(source).select_by_value("invocation")
    field = WebDriverWait(browser, 5, ignored_exceptions=(StaleElementReferenceException,)).until(
        lambda b: at(b, path).find_element(By.CSS_SELECTOR, "input[data-field=target]")
    )
    field.send_keys(name, Keys.TAB)


def argument(browser, path, name):
    """The typed field of parameter ``name`` in the call of the task node at ``path``."""
    return browser.find_element(
        By.CSS_SELECTOR, f'li[data-path="{path}"] > .ta-call-fields [id$="-{name}"]'
    )


def call(browser, path, task, **values):
    """Type a task's name into a new task node, then fill its typed fields: text for inputs,
    the option's text for selects."""
    field = at(browser, path).find_element(By.CSS_SELECTOR, "input[data-field=task]")
    field.send_keys(task, Keys.TAB)
    for name, value in values.items():
        box = WebDriverWait(browser, 5, ignored_exceptions=(StaleElementReferenceException,)
                            ).until(lambda b, n=name: argument(b, path, n))
        if box.tag_name == "select":
            Select(box).select_by_visible_text(str(value))
        else:
            box.send_keys(str(value))


def wait_preview(browser, text, timeout=15):
    WebDriverWait(browser, timeout, ignored_exceptions=(StaleElementReferenceException,)).until(
        lambda b: text in b.find_element(By.ID, "workflow-preview").text
    )


def start(browser, base, name):
    browser.get(f"{base}/admin/task_admin/workflow/add/")
    fill(browser, "name", name)


def save(browser):
    submit(browser, (By.NAME, "_continue"))
    assert "errornote" not in browser.page_source, browser.page_source[:5000]


