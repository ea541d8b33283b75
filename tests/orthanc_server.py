"""A real Orthanc PACS for the tests: started on free localhost ports with a temporary configuration and
storage, DICOMweb plugin loaded, stopped and removed afterwards. No network mocks.

Fixtures (import them into a test module): ``orthanc`` (the main server, session-scoped) and
``rejecting_orthanc`` (one whose Lua filter refuses every stored instance). Both skip with a reason when
the ``Orthanc`` binary is not installed (Debian: ``apt-get install orthanc orthanc-dicomweb``).
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

#: our calling AE title (the app's default) and the server's.
CLIENT_AET, SERVER_AET = "JCSVIEWER", "ORTHANC"
DICOMWEB_PLUGIN_PATHS = ("/usr/share/orthanc/plugins/libOrthancDicomWeb.so",
                         "/usr/lib/orthanc/libOrthancDicomWeb.so.1.7")
#: Orthanc Lua filters that refuse every instance sent to it: a failing C-STORE filter makes Orthanc answer the
#: C-STORE with a failure status (0xA700), a failing filter of received instances fails the STOW-RS store.
#: (A filter that merely returns false would drop the instance and still report success.)
REJECT_ALL_LUA = """
function ReceivedCStoreInstanceFilter(dicom, origin, info)
  error("this test PACS refuses every instance")
end
function ReceivedInstanceFilter(dicom, origin, info)
  error("this test PACS refuses every instance")
end
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def dicomweb_plugin() -> str | None:
    return next((p for p in DICOMWEB_PLUGIN_PATHS if Path(p).is_file()), None)


class OrthancExited(RuntimeError):
    """Orthanc stopped while starting (its log says why; a port taken meanwhile is the usual cause)."""


class Orthanc:
    """One Orthanc process; ``dimse`` (``AET@127.0.0.1:PORT``) and ``dicomweb`` (URL) address it."""

    def __init__(self, root: Path, lua: str | None = None) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self._lua = lua
        # A port found free may be taken by a parallel test worker before Orthanc binds it: try new ports then.
        for attempt in range(3):
            try:
                self._start()
                return
            except OrthancExited:
                if attempt == 2:
                    raise

    def _start(self) -> None:
        root, lua = self.root, self._lua
        self.dicom_port, self.http_port = free_port(), free_port()
        storage = root / "storage"
        config = {
            "Name": f"jcs-test-{self.http_port}",
            "StorageDirectory": str(storage), "IndexDirectory": str(storage),
            "DicomAet": SERVER_AET, "DicomPort": self.dicom_port, "HttpPort": self.http_port,
            "RemoteAccessAllowed": False, "AuthenticationEnabled": False,
            # A wrong called AE title is refused at association, as a hospital PACS does.
            "DicomCheckCalledAet": True,
            "DicomModalities": {"jcs": [CLIENT_AET, "127.0.0.1", free_port()]},
            # ... and so is an unknown calling AE title: only the AEs listed in DicomModalities may ask.
            "DicomAlwaysAllowEcho": False, "DicomAlwaysAllowFind": False, "DicomAlwaysAllowGet": False,
            "DicomAlwaysAllowMove": False, "DicomAlwaysAllowStore": False,
            "DicomScpTimeout": 30, "StableAge": 1, "ConcurrentJobs": 1,
            "MaximumStorageCacheSize": 0,  # a file removed from the storage is gone (the partial-retrieve test)
        }
        plugin = dicomweb_plugin()
        if plugin:
            config["Plugins"] = [plugin]
            config["DicomWeb"] = {"Enable": True, "Root": "/dicom-web/"}
        if lua is not None:
            script = root / "filter.lua"
            script.write_text(lua)
            config["LuaScripts"] = [str(script)]
        (root / "orthanc.json").write_text(json.dumps(config, indent=1))
        self._log = open(root / "orthanc.log", "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen([shutil.which("Orthanc") or "Orthanc", str(root / "orthanc.json")],
                                        stdout=self._log, stderr=subprocess.STDOUT)
        self._wait_ready()

    @property
    def dimse(self) -> str:
        return f"{SERVER_AET}@127.0.0.1:{self.dicom_port}"

    @property
    def dicomweb(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/dicom-web"

    def _wait_ready(self) -> None:
        for _ in range(300):  # polled readiness, not a timing assertion
            if self.process.poll() is not None:
                self._log.close()
                raise OrthancExited(f"Orthanc exited: {(self.root / 'orthanc.log').read_text()[-2000:]}")
            try:
                self.rest("/system")
                with socket.create_connection(("127.0.0.1", self.dicom_port), timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("Orthanc did not answer on /system within 30 s")

    def rest(self, path: str, method: str = "GET", body: bytes | None = None):
        """Orthanc's own REST API (JSON), the independent view of what it holds."""
        request = urllib.request.Request(f"http://127.0.0.1:{self.http_port}{path}", data=body, method=method)
        with urllib.request.urlopen(request, timeout=30) as response:
            data = response.read()
        return json.loads(data) if data else None

    def upload(self, files) -> list[str]:
        """Store files through the REST API (not through the code under test); returns instance ids."""
        return [self.rest("/instances", "POST", Path(f).read_bytes())["ID"] for f in files]

    def series_of_study(self, study_uid: str) -> list[dict]:
        """The main DICOM tags of every series of a study (looked up by StudyInstanceUID)."""
        found = self.rest("/tools/lookup", "POST", study_uid.encode())
        studies = [f["ID"] for f in found if f["Type"] == "Study"]
        if not studies:
            return []
        return [s["MainDicomTags"] | {"Instances": s["Instances"]}
                for s in self.rest(f"/studies/{studies[0]}/series?expand")]

    def instance_file(self, instance_id: str) -> bytes:
        request = urllib.request.Request(f"http://127.0.0.1:{self.http_port}/instances/{instance_id}/file")
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.read()

    def clear(self) -> None:
        for patient in self.rest("/patients"):
            self.rest(f"/patients/{patient}", "DELETE")

    def stop(self) -> None:
        # Killed, not terminated: its storage is deleted next, and a graceful Orthanc shutdown takes seconds.
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._log.close()


def _start(lua: str | None = None):
    if shutil.which("Orthanc") is None:
        pytest.skip("Orthanc is not installed (Debian/Ubuntu: apt-get install orthanc orthanc-dicomweb)")
    root = Path(tempfile.mkdtemp(prefix="jcs-orthanc-"))
    server = Orthanc(root, lua=lua)
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def orthanc():
    """The live test PACS (session-scoped: every test module shares it)."""
    yield from _start()


@pytest.fixture(scope="session")
def rejecting_orthanc():
    """A live PACS that refuses every instance stored into it."""
    yield from _start(REJECT_ALL_LUA)


def require_dicomweb() -> None:
    if dicomweb_plugin() is None:
        pytest.skip("the Orthanc DICOMweb plugin is not installed (apt-get install orthanc-dicomweb)")
