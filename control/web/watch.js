// relaycast watch page: WHEP (WebRTC) first for the lowest latency, HLS as the fallback
// (native HLS where the browser has it). Exposes window.relaycastPlayer for tests.
'use strict';

(function () {
  const parts = location.pathname.split('/').filter(Boolean); // ["watch", id]
  const id = decodeURIComponent(parts[1] || '');
  const params = new URLSearchParams(location.search);
  const token = params.get('token') || '';
  const forced = params.get('mode'); // "whep" or "hls" to force one
  const base = '/api/stream/' + encodeURIComponent(id);
  const video = document.getElementById('video');
  const status = document.getElementById('status');
  const badge = document.getElementById('badge');
  const modeLabel = document.getElementById('mode');
  const state = { mode: '', error: '', resource: '', audioBytes: 0, videoBytes: 0 };
  window.relaycastPlayer = state;

  function setStatus(text) { status.textContent = text; }
  function playing(mode) {
    state.mode = mode;
    modeLabel.textContent = mode === 'whep' ? 'WebRTC' : 'HLS';
    badge.hidden = false;
    setStatus('');
  }

  async function whep() {
    const pc = new RTCPeerConnection();
    pc.addTransceiver('video', { direction: 'recvonly' });
    pc.addTransceiver('audio', { direction: 'recvonly' });
    const stream = new MediaStream();
    pc.ontrack = (e) => { stream.addTrack(e.track); video.srcObject = stream; };
    await pc.setLocalDescription(await pc.createOffer());
    await new Promise((resolve) => {
      if (pc.iceGatheringState === 'complete') return resolve();
      const done = () => { if (pc.iceGatheringState === 'complete') resolve(); };
      pc.addEventListener('icegatheringstatechange', done);
      setTimeout(resolve, 2000);
    });
    const headers = { 'Content-Type': 'application/sdp' };
    if (token) headers.Authorization = 'Bearer ' + token;
    const resp = await fetch(base + '/webrtc/whep', { method: 'POST', headers, body: pc.localDescription.sdp });
    if (resp.status !== 201) {
      pc.close();
      let msg = 'HTTP ' + resp.status;
      try { msg = (await resp.json()).error || msg; } catch (_) { /* not JSON */ }
      throw new Error(msg);
    }
    state.resource = resp.headers.get('Location') || '';
    await pc.setRemoteDescription({ type: 'answer', sdp: await resp.text() });
    await new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('WebRTC did not connect')), 8000);
      pc.addEventListener('connectionstatechange', () => {
        if (pc.connectionState === 'connected') { clearTimeout(t); resolve(); }
        if (pc.connectionState === 'failed') { clearTimeout(t); reject(new Error('WebRTC failed')); }
      });
    });
    window.addEventListener('pagehide', () => {
      if (state.resource) fetch(state.resource, { method: 'DELETE', keepalive: true, headers: token ? { Authorization: 'Bearer ' + token } : {} });
      pc.close();
    });
    // Bytes received per kind, for the viewer's stats and the browser tests.
    setInterval(async () => {
      const stats = await pc.getStats();
      stats.forEach((r) => {
        if (r.type === 'inbound-rtp') {
          if (r.kind === 'audio') state.audioBytes = r.bytesReceived;
          if (r.kind === 'video') state.videoBytes = r.bytesReceived;
        }
      });
    }, 1000);
    await video.play().catch(() => {});
    playing('whep');
  }

  function hls() {
    if (!video.canPlayType('application/vnd.apple.mpegurl')) {
      throw new Error('this browser has no native HLS');
    }
    video.srcObject = null;
    video.src = base + '/hls/index.m3u8' + (token ? '?token=' + encodeURIComponent(token) : '');
    video.addEventListener('playing', () => playing('hls'), { once: true });
    video.addEventListener('error', () => { state.error = 'HLS: ' + (video.error && video.error.message); setStatus('Stream unavailable'); });
    video.play().catch(() => {});
  }

  async function start() {
    if (!id) { setStatus('No stream given'); return; }
    if (forced !== 'hls') {
      try { await whep(); return; } catch (e) {
        state.error = 'WHEP: ' + e.message;
        if (forced === 'whep') { setStatus('Stream unavailable: ' + e.message); return; }
      }
    }
    try { hls(); } catch (e) { state.error = e.message; setStatus('Stream unavailable: ' + e.message); }
  }
  start();
})();
