;;; codegen-lsp-beside-test.el --- pylsp and codegen-lsp in the same buffers, through rass  -*- lexical-binding: t; -*-

;; CODEGEN_LSP_TEST_CASE=<case.json> emacs --batch -Q -l ert -l editors/emacs/test/codegen-lsp-beside-test.el \
;;   -f ert-run-tests-batch-and-exit
;; (tests/test_editor_emacs.py writes the case: a Python file in a project folder, a position, the CLI's
;; completion there, the server's command line and settings, and how to run rass.)  A C buffer with clangd
;; (Debian's clangd) is checked the same way, where clangd is installed.
;;
;; Eglot's own entry for python-mode (pylsp: Debian's python3-pylsp) stays what it was; `codegen-lsp-register'
;; runs codegen-lsp beside it behind rass.  In one Eglot connection: hover and diagnostics come from pylsp,
;; ghost text and the status from codegen-lsp; switched off, no inline completion request leaves Emacs and
;; none reaches the server (counted in the events buffer, where the server's log lines arrive as
;; window/logMessage); switched on again, the ghost text is back.

;;; Code:

(require 'ert)
(require 'cl-lib)
(require 'json)
(dolist (dir (file-expand-wildcards "/usr/share/emacs/site-lisp/elpa/*"))
  (add-to-list 'load-path dir))
(require 'package)
(package-initialize)
(require 'flymake)
(add-to-list 'load-path (expand-file-name ".." (file-name-directory (or load-file-name buffer-file-name))))
(require 'codegen-lsp)

(defvar codegen-lsp-beside--case
  (with-temp-buffer
    (insert-file-contents (getenv "CODEGEN_LSP_TEST_CASE"))
    (json-parse-buffer :object-type 'alist :array-type 'list)))

(defun codegen-lsp-beside--field (name)
  "The case's field NAME."
  (alist-get name codegen-lsp-beside--case))

(defun codegen-lsp-beside--wait (what seconds predicate)
  "Process events until PREDICATE returns non-nil (returned), or fail after SECONDS, saying WHAT."
  (let ((deadline (+ (float-time) seconds)) value)
    (while (and (not (setq value (funcall predicate))) (< (float-time) deadline))
      (accept-process-output nil 0.05))
    (or value (ert-fail (format "Timed out after %ss waiting for %s" seconds what)))))

(defun codegen-lsp-beside--events (regexp)
  "How many times REGEXP occurs in this buffer's Eglot events buffer."
  (with-current-buffer (jsonrpc-events-buffer (eglot-current-server))
    (how-many regexp (point-min) (point-max))))

(defun codegen-lsp-beside--type-at-case-line ()
  "Back to the file's text; at the end of the case's line, retype its last character."
  (codegen-lsp-inline-clear)
  (unless (equal (buffer-string) (codegen-lsp-beside--field 'text))
    (erase-buffer)
    (insert (codegen-lsp-beside--field 'text)))
  (goto-char (point-min))
  (forward-line (codegen-lsp-beside--field 'line))
  (end-of-line)
  (let ((last (char-before)))
    (delete-char -1)
    (execute-kbd-macro (vector last))))

(defun codegen-lsp-beside--configure ()
  "The case's server, rass and settings; the user's own servers kept beside ours."
  (setq codegen-lsp-server-command (codegen-lsp-beside--field 'server)
        codegen-lsp-rass-command (codegen-lsp-beside--field 'rass)
        codegen-lsp-keep-other-servers t)
  (pcase-dolist (`(,name . ,value) (codegen-lsp-beside--field 'settings))
    (set (nth 1 (assq (intern (format ":%s" name)) codegen-lsp--settings)) value)))

(defun codegen-lsp-beside--connect (user-server)
  "Start Eglot in this buffer and return its server: ours, through rass, wrapping the user's USER-SERVER (a
regexp of its name), with ghost text on; point at the buffer's start."
  (apply #'eglot (eglot--guess-contact))
  (codegen-lsp-beside--wait "Eglot to connect" 60 #'eglot-managed-p)
  (let ((server (eglot-current-server)))
    (should (eq (eieio-object-class server) 'codegen-lsp-server))
    (should (codegen-lsp--wrapped server))
    (should (string-match-p user-server (plist-get (eglot--server-info server) :name)))
    (should codegen-lsp-inline-mode)
    (goto-char (point-min))
    server))

(ert-deftest codegen-lsp-beside-pylsp ()
  "Hover and diagnostics from pylsp, ghost text and on/off from codegen-lsp, in the same buffers."
  (codegen-lsp-beside--configure)
  (should (executable-find "pylsp"))
  (codegen-lsp-register)
  (let* ((file (codegen-lsp-beside--field 'path))
         (other (expand-file-name "other.py" (file-name-directory file))))
    (with-temp-file other
      (insert "def shout(text):\n    \"\"\"Return TEXT in capitals.\"\"\"\n    return text.upper()\n\n\n"
              "shout(undefined_name)\n"))
    ;; pylsp's side: hover and a diagnostic, in a buffer of the same server.
    (find-file other)
    (let ((server (codegen-lsp-beside--connect "pylsp")))
      (should (string-match-p "codegen-lsp" (plist-get (eglot--server-info server) :name)))
      (search-forward "shout(undefined")
      (backward-char (length "(undefined"))
      (let ((hover (jsonrpc-request server :textDocument/hover (eglot--TextDocumentPositionParams))))
        (should (string-match-p "Return TEXT in capitals" (format "%S" (plist-get hover :contents)))))
      (codegen-lsp-beside--wait
       "pyflakes' diagnostic" 60
       (lambda () (cl-find-if (lambda (d) (string-match-p "undefined name" (flymake-diagnostic-text d)))
                              (flymake-diagnostics))))
      ;; codegen-lsp's side: the same connection serves the case's file.
      (find-file file)
      (codegen-lsp-beside--wait "the file to join the connection" 30 #'eglot-managed-p)
      (should (eq (eglot-current-server) server))
      (should codegen-lsp-inline-mode)
      (codegen-lsp-beside--wait "the status to say ready" 120
                                (lambda () (equal (codegen-lsp-mode-line) " CG:ready")))
      (codegen-lsp-beside--type-at-case-line)
      (should (equal (codegen-lsp-beside--wait "ghost text" 120 #'codegen-lsp-inline-text)
                     (codegen-lsp-beside--field 'completion)))
      ;; Off: the lighter says so, and nothing is asked.
      (codegen-lsp-toggle)
      (should (equal (codegen-lsp-mode-line) " CG:off"))
      (let ((sent (codegen-lsp-beside--events "method \"textDocument/inlineCompletion\""))
            (logged (codegen-lsp-beside--events "#[0-9]+ inline ")))
        (codegen-lsp-beside--type-at-case-line)
        (dotimes (_ 5) (accept-process-output nil 0.05)) ; the request timer's turn
        ;; A round trip to codegen-lsp: an inline request sent before it would be answered (and logged) first.
        (jsonrpc-request server :codegenLsp/status (codegen-lsp--status-params))
        (should-not (codegen-lsp-inline-text))
        (should (= (codegen-lsp-beside--events "method \"textDocument/inlineCompletion\"") sent))
        (should (= (codegen-lsp-beside--events "#[0-9]+ inline ") logged))
        ;; On again: ghost text again.
        (codegen-lsp-toggle)
        (should (equal (codegen-lsp-mode-line) " CG:ready"))
        (codegen-lsp-beside--type-at-case-line)
        (should (equal (codegen-lsp-beside--wait "ghost text after switching on" 120 #'codegen-lsp-inline-text)
                       (codegen-lsp-beside--field 'completion)))
        (should (> (codegen-lsp-beside--events "method \"textDocument/inlineCompletion\"") sent)))
      (set-buffer-modified-p nil)
      (eglot-shutdown server nil 10))))

(ert-deftest codegen-lsp-beside-clangd ()
  "A C buffer: hover and a diagnostic from clangd, inline completions answered by codegen-lsp."
  (unless (executable-find "clangd")
    (ert-skip "clangd is not installed (apt-get install clangd)"))
  (codegen-lsp-beside--configure)
  (should (member "c" (codegen-lsp-completed-languages))) ; a local model: all six
  (codegen-lsp-register)
  (let ((file (expand-file-name "main.c" (file-name-directory (codegen-lsp-beside--field 'path)))))
    (with-temp-file file
      (insert "/* Adds two numbers. */\nint add(int a, int b) { return a + b; }\n\n"
              "int main(void) { return add(1, 2) + undeclared_thing; }\n"))
    (find-file file)
    (should (eq major-mode 'c-mode))
    (let ((server (codegen-lsp-beside--connect "clangd")))
      (search-forward "return add(")
      (backward-char 2)
      (let ((hover (jsonrpc-request server :textDocument/hover (eglot--TextDocumentPositionParams))))
        (should (string-match-p "int add(int a, int b)" (format "%S" (plist-get hover :contents)))))
      (codegen-lsp-beside--wait
       "clangd's diagnostic" 60
       (lambda () (cl-find-if (lambda (d) (string-match-p "undeclared_thing" (flymake-diagnostic-text d)))
                              (flymake-diagnostics))))
      ;; codegen-lsp answers the inline completion (an InlineCompletionList, not clangd's MethodNotFound).
      (goto-char (point-max))
      (insert "int twice(int x) { return ")
      (codegen-lsp--send-changes)
      (let ((answer (jsonrpc-request server :textDocument/inlineCompletion
                                     (append (eglot--TextDocumentPositionParams) '(:context (:triggerKind 1)))
                                     :timeout 120)))
        (should (vectorp (plist-get answer :items))))
      (set-buffer-modified-p nil)
      (eglot-shutdown server nil 10))))

(provide 'codegen-lsp-beside-test)
;;; codegen-lsp-beside-test.el ends here
