"""The app's JavaScript catalogue: the strings of its scripts in the staff member's language.

``composer.js`` and ``arguments.js`` call ``window.gettext`` / ``ngettext`` / ``interpolate``
(with an English fallback). Django's admin serves ``admin:jsi18n``, but only for
``django.contrib.admin``'s ``djangojs`` domain; task_admin's own strings
(``locale/*/LC_MESSAGES/djangojs.po``) come from Django's ``JavaScriptCatalog`` for
``packages=["task_admin"]``, served by each model admin whose pages load those scripts
(``<model>/jsi18n/``, so the host project adds no URL). ``catalogue_media`` puts it *before*
the scripts: they read ``window.gettext`` when they run. Two catalogues on a page merge
(``django.catalog``), so the admin's own strings stay translated.

Caching: the script's address carries the language and a digest of the compiled catalogues
(and Django's version, which writes the formats), so the browser may keep it for a day and a
deployment with new strings, or a switch of language, asks for a new address. After that day
the browser revalidates with the ETag (same language and digest: 304, no catalogue built).
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

import django
from django import forms
from django.core.exceptions import PermissionDenied
from django.urls import path, reverse
from django.utils.http import urlencode
from django.utils.translation import get_language
from django.views.decorators.cache import cache_control
from django.views.decorators.http import condition
from django.views.decorators.vary import vary_on_headers
from django.views.i18n import JavaScriptCatalog

DOMAIN = "djangojs"
LOCALE = Path(__file__).resolve().parent.parent / "locale"
MAX_AGE = 24 * 60 * 60


@functools.cache
def catalogue_version() -> str:
    """A digest of the compiled JavaScript catalogues: it changes when their strings do."""
    digest = hashlib.sha256(django.get_version().encode())
    for mo in sorted(LOCALE.glob(f"*/LC_MESSAGES/{DOMAIN}.mo")):
        digest.update(str(mo.relative_to(LOCALE)).encode())
        digest.update(mo.read_bytes())
    return digest.hexdigest()[:12]


def _etag(request, *args, **kwargs) -> str:
    # The language is active here (LocaleMiddleware runs before the view).
    return f"{get_language()}-{catalogue_version()}"


catalogue = vary_on_headers("Accept-Language", "Cookie")(
    cache_control(private=True, max_age=MAX_AGE)(
        condition(etag_func=_etag)(
            JavaScriptCatalog.as_view(packages=["task_admin"], domain=DOMAIN)
        )
    )
)


class JavaScriptCatalogueMixin:
    """A model admin serving the app's JavaScript catalogue, and the media that loads it."""

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        return [
            path(
                "jsi18n/",
                # Like admin:jsi18n, cacheable (admin_view adds never_cache otherwise).
                self.admin_site.admin_view(self.catalogue_view, cacheable=True),
                name="{}_{}_jsi18n".format(*info),
            ),
            *super().get_urls(),
        ]

    def catalogue_view(self, request):
        # Only the app's strings, but every URL of the app refuses staff who may use none of
        # it (tests/admin/test_smoke_permissions.py).
        if not self.has_module_permission(request):
            raise PermissionDenied
        return catalogue(request)

    def catalogue_url(self) -> str:
        url = reverse(
            f"admin:{self.opts.app_label}_{self.opts.model_name}_jsi18n",
            current_app=self.admin_site.name,
        )
        return f"{url}?{urlencode({'language': get_language(), 'v': catalogue_version()})}"

    def catalogue_media(self, *scripts: str) -> forms.Media:
        """The catalogue, then ``scripts``: one list, so Django's media merging keeps the
        catalogue before them even when another list (a form's media) also names them."""
        return forms.Media(js=[self.catalogue_url(), *scripts])
