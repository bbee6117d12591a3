// exoml serve: the drawing canvas of the digit pages and the run chooser. No dependencies.
(function () {
  'use strict';
  document.addEventListener('DOMContentLoaded', function () {
    var chooser = document.getElementById('run-chooser');
    if (chooser) {  // a new run is a new page: the form of that run
      chooser.addEventListener('change', function () { chooser.form.submit(); });
    }
    var canvas = document.getElementById('canvas');
    if (!canvas) { return; }
    var ctx = canvas.getContext('2d');
    var input = document.getElementById(canvas.getAttribute('data-for'));
    var form = document.getElementById('task-form');
    var drawn = false, last = null;
    function clear() {
      ctx.fillStyle = '#fff';
      ctx.fillRect(0, 0, canvas.width, canvas.height);
      drawn = false;
      canvas.setAttribute('data-drawn', '0');
    }
    function point(e) {
      var r = canvas.getBoundingClientRect();
      return [(e.clientX - r.left) * canvas.width / r.width, (e.clientY - r.top) * canvas.height / r.height];
    }
    function stroke(p) {
      ctx.strokeStyle = '#000';
      ctx.lineWidth = canvas.width / 12;  // about MNIST's stroke width relative to the digit
      ctx.lineCap = 'round';
      ctx.lineJoin = 'round';
      ctx.beginPath();
      ctx.moveTo(last[0], last[1]);
      ctx.lineTo(p[0], p[1]);
      ctx.stroke();
      last = p;
      drawn = true;
      canvas.setAttribute('data-drawn', '1');
    }
    clear();
    canvas.addEventListener('pointerdown', function (e) {
      canvas.setPointerCapture(e.pointerId);
      last = point(e);
      stroke(last);
      e.preventDefault();
    });
    canvas.addEventListener('pointermove', function (e) {
      if (last) { stroke(point(e)); }
    });
    function up() { last = null; }
    canvas.addEventListener('pointerup', up);
    canvas.addEventListener('pointercancel', up);
    document.getElementById('clear').addEventListener('click', clear);
    form.addEventListener('submit', function (e) {
      if (!drawn || (input.files && input.files.length)) { return; }  // a chosen file wins
      e.preventDefault();
      canvas.toBlob(function (blob) {
        var dt = new DataTransfer();
        dt.items.add(new File([blob], 'drawing.png', {type: 'image/png'}));
        input.files = dt.files;
        HTMLFormElement.prototype.submit.call(form);  // (form.submit is the button named submit)
      }, 'image/png');
    });
  });
})();
