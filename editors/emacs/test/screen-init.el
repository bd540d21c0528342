;;; screen-init.el --- The Emacs a person sees in tests/test_editor_screens.py (in tmux)  -*- lexical-binding: t; -*-

;; emacs -nw -Q -l screen-init.el FILE: Eglot (Debian's elpa packages on the load path), this package set up
;; from the case file the test wrote ($CODEGEN_LSP_TEST_CASE: the server's command line and settings), ghost
;; text on in every buffer codegen-lsp manages, and an Emacs server at $CODEGEN_LSP_EMACS_SOCKET for the test
;; to read buffers with emacsclient.

(setq native-comp-async-report-warnings-errors 'silent
      warning-minimum-level :error)
(dolist (dir (file-expand-wildcards "/usr/share/emacs/site-lisp/elpa/*"))
  (add-to-list 'load-path dir))
(require 'package)
(package-initialize)
;; go-mode from Debian's elpa-go-mode (Emacs 28 has none): its autoloads map .go files to it.
(dolist (autoloads (file-expand-wildcards "/usr/share/emacs/site-lisp/elpa/*/*-autoloads.el"))
  (load autoloads nil t))
(add-to-list 'load-path (file-name-directory (directory-file-name
                                              (file-name-directory (or load-file-name buffer-file-name)))))
(require 'json)
(require 'codegen-lsp)

(setq inhibit-startup-screen t
      make-backup-files nil
      auto-save-default nil)
(global-display-line-numbers-mode 1)

(let* ((case (json-read-file (getenv "CODEGEN_LSP_TEST_CASE")))
       (settings (alist-get 'settings case)))
  (setq codegen-lsp-server-command (append (alist-get 'server case) nil))
  (dolist (entry codegen-lsp--settings)
    (let ((value (assq (intern (substring (symbol-name (car entry)) 1)) settings)))
      (when value (set (nth 1 entry) (cdr value))))))

(let ((case (json-read-file (getenv "CODEGEN_LSP_TEST_CASE"))))
  (setq codegen-lsp-keep-other-servers (eq (alist-get 'keep_other_servers case) t))
  (when-let ((rass (alist-get 'rass case))) (setq codegen-lsp-rass-command (append rass nil))))
(dolist (entry codegen-lsp-major-modes)
  (add-hook (intern (format "%s-hook" (car entry))) #'codegen-lsp-ensure))

(setq server-socket-dir (getenv "CODEGEN_LSP_EMACS_SOCKET"))
(server-start)

(defun codegen-lsp-test-base64 (text)
  "TEXT as base64 of its UTF-8 bytes, for emacsclient --eval."
  (base64-encode-string (encode-coding-string text 'utf-8) t))
