"""Replaces pyinstaller-hooks-contrib's sounddevice hook, which bundles the build machine's libportaudio.

On Linux PortAudio is part of the system's audio stack: it drags in libasound and libjack, and a bundled
libasound next to the user's ALSA plugins (PulseAudio, PipeWire) built against their own is a known source
of silent failures. sounddevice finds the system's libportaudio at import (ctypes.util.find_library); where
there is none the app reports that there is no microphone. So: collect nothing.
"""

binaries: list = []
datas: list = []
