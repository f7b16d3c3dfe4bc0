# QGIS plugin targets; included from the root Makefile (paths are relative to the repository root).
QGIS_PKGS := python3-qgis qgis-providers python3-gdal xvfb xauth qgis
QGIS_VENV := .venv-qgis
PLUGIN_ZIP := rs_scene_plugin.zip
PLUGIN_STAGE := build/plugin-zip
RS_SCENE_BACKEND_PYTHON ?= $(CURDIR)/.venv/bin/python
# the root Makefile's target that builds the backend venv the plugin tests start the service from
PLUGIN_BACKEND_SETUP ?= setup

.PHONY: setup-qgis test-plugin test-desktop package

# Debian's QGIS imports only under /usr/bin/python3; the test venv sees it through --system-site-packages.
setup-qgis:
	@if dpkg-query -W -f='$${Status}\n' $(QGIS_PKGS) 2>/dev/null | grep -vq 'install ok installed' \
	    || [ "$$(dpkg-query -W -f='$${Status}\n' $(QGIS_PKGS) 2>/dev/null | wc -l)" -ne 6 ]; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(QGIS_PKGS); \
	else echo "QGIS packages already installed"; fi
	@test -x $(QGIS_VENV)/bin/python || /usr/bin/python3 -m venv --system-site-packages $(QGIS_VENV)
	@$(QGIS_VENV)/bin/python -c "import pytest, pytest_qgis, pytestqt" 2>/dev/null \
	  || $(QGIS_VENV)/bin/pip install -q pytest pytest-qgis pytest-qt
	@$(QGIS_VENV)/bin/python -c "import qgis.core; print('QGIS', qgis.core.Qgis.QGIS_VERSION)"

test-plugin: setup-qgis $(PLUGIN_BACKEND_SETUP)
	RS_SCENE_BACKEND_PYTHON=$(RS_SCENE_BACKEND_PYTHON) $(QGIS_VENV)/bin/python -m pytest tests/plugin -q

# QGIS reads metadata.txt and icons from inside the plugin folder, so stage them there.
package: $(PLUGIN_BACKEND_SETUP)
	rm -rf $(PLUGIN_STAGE) $(PLUGIN_ZIP)
	mkdir -p $(PLUGIN_STAGE)
	cp -r rs_scene_plugin $(PLUGIN_STAGE)/rs_scene_plugin
	find $(PLUGIN_STAGE) -name __pycache__ -prune -exec rm -rf {} +
	cp metadata.txt $(PLUGIN_STAGE)/rs_scene_plugin/metadata.txt
	cp -r resources $(PLUGIN_STAGE)/rs_scene_plugin/resources
	@# the backend as a wheel (shipped models included): "Install backend" pip-installs it from here
	$(VENV)/bin/python -m pip wheel -q --no-deps -w $(PLUGIN_STAGE)/rs_scene_plugin/backend ./backend
	rm -rf backend/build
	cd $(PLUGIN_STAGE) && python3 -m zipfile -c ../../$(PLUGIN_ZIP) rs_scene_plugin
	@echo "built $(PLUGIN_ZIP)"
