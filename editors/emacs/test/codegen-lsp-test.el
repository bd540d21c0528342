;;; codegen-lsp-test.el --- codegen-lsp.el against the real server, in a real Emacs  -*- lexical-binding: t; -*-

;; CODEGEN_LSP_TEST_CASE=<case.json> emacs --batch -Q -l editors/emacs/test/codegen-lsp-test.el
;; (tests/test_editor_emacs.py writes the case: a file, a position, the CLI's completion there.)
;;
;; Eglot connects to the server on the case's Python file; keys are typed with `execute-kbd-macro', so the
;; command loop, `post-command-hook' and the key maps run as they do for a person.
;; 1. ghost text (`codegen-lsp-inline-mode') equals the completion; TAB inserts it; M-<right> takes a
;;    word (M-<down> a line) and TAB the rest; C-g dismisses;
;; 2. with `codegen-lsp-ghost-text' nil, `completion-at-point' (Eglot's) inserts the same completion.
;; Prints one line per check; exits 0 when all pass, 1 on the first failure.

;;; Code:

(require 'cl-lib)
(require 'json)

;; Eglot: Debian's elpa-eglot (outside -Q's load-path), a package.el install, or Emacs 29+'s own.
(dolist (dir (file-expand-wildcards "/usr/share/emacs/site-lisp/elpa/*"))
  (add-to-list 'load-path dir))
(require 'package)
(package-initialize)
(add-to-list 'load-path (expand-file-name ".." (file-name-directory (or load-file-name buffer-file-name))))
(require 'codegen-lsp)

(defvar codegen-lsp-test--start (float-time))
(defvar codegen-lsp-test--case nil)

(defun codegen-lsp-test--log (format-string &rest args)
  (princ (format "[%6.2fs] %s\n" (- (float-time) codegen-lsp-test--start) (apply #'format format-string args))))

(defun codegen-lsp-test--field (name)
  (alist-get name codegen-lsp-test--case))

(defun codegen-lsp-test--wait (what seconds predicate)
  "Process events until PREDICATE returns non-nil (returned), or fail after SECONDS."
  (let ((deadline (+ (float-time) seconds)) value)
    (while (and (not (setq value (funcall predicate))) (< (float-time) deadline))
      (accept-process-output nil 0.02))
    (or value (error "Timed out after %ss waiting for %s" seconds what))))

(defun codegen-lsp-test--check (what got want)
  (unless (equal got want)
    (error "%s:\n  got:  %S\n  want: %S" what got want))
  (codegen-lsp-test--log "ok: %s" what))

(defun codegen-lsp-test--text ()
  (buffer-substring-no-properties (point-min) (point-max)))

(defun codegen-lsp-test--type-at-case-line ()
  "Back to the file's text; at the end of the case's line, retype its last character."
  (codegen-lsp-inline-clear)
  (unless (equal (codegen-lsp-test--text) (codegen-lsp-test--field 'text))
    (erase-buffer)
    (insert (codegen-lsp-test--field 'text)))
  (goto-char (point-min))
  (forward-line (codegen-lsp-test--field 'line))
  (end-of-line)
  (let ((last (char-before)))
    (delete-char -1)
    (execute-kbd-macro (vector last))))

(defun codegen-lsp-test--wait-ghost (what)
  (codegen-lsp-test--wait what 60 #'codegen-lsp-inline-text))

(defun codegen-lsp-test--connect ()
  "Start Eglot on this buffer, as M-x eglot would."
  (apply #'eglot (eglot--guess-contact))
  (codegen-lsp-test--wait "Eglot to connect" 30
                          (lambda () (and (eglot-current-server) (bound-and-true-p eglot--managed-mode))))
  (codegen-lsp-test--check "the server is codegen-lsp" (eieio-object-class (eglot-current-server))
                           'codegen-lsp-server))

(defun codegen-lsp-test--shutdown ()
  ;; Eglot 1.9 gives `shutdown' 1.5 s by default; the server stops its model worker first.
  (set-buffer-modified-p nil)
  (let ((server (eglot-current-server))
        (start (float-time)))
    (eglot-shutdown server nil 10)
    (codegen-lsp-test--log "shutdown answered in %.2fs" (- (float-time) start))
    (codegen-lsp-test--check "the server exited" (jsonrpc-running-p server) nil)))

(defun codegen-lsp-test--run ()
  (setq codegen-lsp-test--case
        (with-temp-buffer
          (insert-file-contents (getenv "CODEGEN_LSP_TEST_CASE"))
          (json-parse-buffer :object-type 'alist :array-type 'list)))
  (let* ((completion (codegen-lsp-test--field 'completion))
         (expected (codegen-lsp-test--field 'expected_text)))
    ;; Settings, as a person would customize them.
    (setq codegen-lsp-server-command (codegen-lsp-test--field 'server))
    (pcase-dolist (`(,name . ,value) (codegen-lsp-test--field 'settings))
      (let ((spec (assq (intern (format ":%s" name)) codegen-lsp--settings)))
        (unless spec (error "No defcustom for the server setting %s" name))
        (set (nth 1 spec) value)))
    ;; Ours alone (pylsp beside it: codegen-lsp-ert.el); registering also turns ghost text on in its buffers.
    (setq codegen-lsp-keep-other-servers nil)
    (codegen-lsp-register)

    (find-file (codegen-lsp-test--field 'path))
    (codegen-lsp-test--check "python-mode" major-mode 'python-mode)
    (codegen-lsp-test--check "the buffer holds the file" (codegen-lsp-test--text) (codegen-lsp-test--field 'text))
    (codegen-lsp-test--connect)
    (codegen-lsp-test--check "ghost text mode is on" codegen-lsp-inline-mode t)
    (codegen-lsp-test--check "the server offers no completion menu to a ghost text client"
                             (eglot--server-capable :completionProvider) nil)

    ;; 1. Ghost text.
    (codegen-lsp-test--type-at-case-line)
    (codegen-lsp-test--check "ghost text equals the CLI completion"
                             (codegen-lsp-test--wait-ghost "ghost text") completion)
    (codegen-lsp-test--check "the ghost text sits at point" (overlay-start codegen-lsp--overlay) (point))
    (let ((cursor (+ (point) (length completion))))
      (execute-kbd-macro (kbd "TAB"))
      (codegen-lsp-test--check "TAB inserted the completion" (codegen-lsp-test--text) expected)
      (codegen-lsp-test--check "point is after the inserted text" (point) cursor))
    (codegen-lsp-test--check "no ghost text left" (codegen-lsp-inline-text) nil)

    (codegen-lsp-test--type-at-case-line)
    (codegen-lsp-test--wait-ghost "ghost text again")
    (let* ((word (and (string-match "\\`[[:space:]\n]*\\(?:\\sw\\|\\s_\\)+\\|\\`[[:space:]\n]*[^[:space:]\n]+"
                                    completion)
                      (match-string 0 completion)))
           (cursor (point)))
      (execute-kbd-macro (kbd "M-<right>"))
      (codegen-lsp-test--check "M-<right> inserted a word" (buffer-substring-no-properties cursor (point)) word)
      (codegen-lsp-test--check "the rest stays a suggestion" (codegen-lsp-inline-text)
                               (substring completion (length word)))
      (execute-kbd-macro (kbd "TAB"))
      (codegen-lsp-test--check "the word and the rest make the completion" (codegen-lsp-test--text) expected))

    (let ((first-line (and (string-match "\\`[^\n]+" completion) (match-string 0 completion))))
      (when (and first-line (not (equal first-line completion)))
        (codegen-lsp-test--type-at-case-line)
        (codegen-lsp-test--wait-ghost "ghost text for a line")
        (let ((cursor (point)))
          (execute-kbd-macro (kbd "M-<down>"))
          (codegen-lsp-test--check "M-<down> inserted a line" (buffer-substring-no-properties cursor (point))
                                   first-line))
        (codegen-lsp-test--check "the other lines stay a suggestion" (codegen-lsp-inline-text)
                                 (substring completion (length first-line)))
        (execute-kbd-macro (kbd "TAB"))
        (codegen-lsp-test--check "the line and the rest make the completion" (codegen-lsp-test--text) expected)))

    (codegen-lsp-test--type-at-case-line)
    (codegen-lsp-test--wait-ghost "ghost text once more")
    (execute-kbd-macro (kbd "C-g"))
    (codegen-lsp-test--check "C-g dismissed the ghost text" (codegen-lsp-inline-text) nil)
    (codegen-lsp-test--check "C-g left the buffer as it was" (codegen-lsp-test--text)
                             (codegen-lsp-test--field 'text))

    ;; 2. Eglot's completion-at-point, with ghost text off (a new server: it is told at `initialize').
    (codegen-lsp-test--shutdown)
    (setq codegen-lsp-ghost-text nil)
    (codegen-lsp-test--connect)
    (codegen-lsp-test--check "ghost text mode is off" codegen-lsp-inline-mode nil)
    (codegen-lsp-test--type-at-case-line)
    (completion-at-point)
    (codegen-lsp-test--check "completion-at-point inserted the completion" (codegen-lsp-test--text) expected)
    (codegen-lsp-test--shutdown)))

(condition-case err
    (progn
      (codegen-lsp-test--run)
      (codegen-lsp-test--log "PASSED")
      (kill-emacs 0))
  (error
   (princ (format "FAILED: %s\n" (error-message-string err)))
   (when-let ((server (ignore-errors (eglot-current-server))))
     (with-current-buffer (jsonrpc-stderr-buffer server)
       (princ (format "--- server stderr (tail) ---\n%s\n"
                      (buffer-substring-no-properties (max (point-min) (- (point-max) 4000)) (point-max)))))
     (with-current-buffer (jsonrpc-events-buffer server)
       (princ (format "--- Eglot's events (tail) ---\n%s\n"
                      (buffer-substring-no-properties (max (point-min) (- (point-max) 6000)) (point-max))))))
   (kill-emacs 1)))

;;; codegen-lsp-test.el ends here
