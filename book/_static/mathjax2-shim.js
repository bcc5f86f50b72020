// The Jupyter widget manager typesets math with MathJax 2's API (MathJax.Hub.Queue); the book
// serves MathJax 3, which has no Hub. Give whatever object is window.MathJax (the configuration
// before MathJax loads, MathJax itself afterwards) a hidden Hub whose Queue typesets with MathJax 3.
(function () {
  function patch(mj) {
    if (mj && typeof mj === "object" && !("Hub" in mj)) {
      Object.defineProperty(mj, "Hub", {
        enumerable: false,
        configurable: true,
        value: {
          Queue: function () {
            var m = window.MathJax;
            if (m && typeof m.typesetPromise === "function") {
              m.typesetPromise().catch(function () {});
            }
          },
        },
      });
    }
    return mj;
  }
  var current = patch(window.MathJax || {});
  Object.defineProperty(window, "MathJax", {
    configurable: true,
    get: function () { return current; },
    set: function (value) { current = patch(value); },
  });
})();
