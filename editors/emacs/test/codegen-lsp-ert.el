;;; codegen-lsp-ert.el --- ERT tests of codegen-lsp.el that need no model  -*- lexical-binding: t; -*-

;; emacs --batch -Q -l ert -l editors/emacs/test/codegen-lsp-ert.el -f ert-run-tests-batch-and-exit
;; (run by tests/test_editor_emacs.py).  Loading, registration in `eglot-server-programs', the mode-line
;; lighter, on/off, keys and menus; the ghost text is put in place as a reply from the server would put it.
;; The real server, pylsp beside it and the screen are in codegen-lsp-test.el, codegen-lsp-beside-test.el and
;; tests/test_editor_screens.py.

;;; Code:

(require 'ert)
(require 'cl-lib)
(dolist (dir (file-expand-wildcards "/usr/share/emacs/site-lisp/elpa/*"))
  (add-to-list 'load-path dir))
(require 'package)
(package-initialize)
(require 'eglot)
(require 'python)

(defvar codegen-lsp-ert--programs-before-load (copy-tree eglot-server-programs)
  "`eglot-server-programs' before codegen-lsp.el was loaded.")
(defvar codegen-lsp-ert--hook-before-load (copy-sequence eglot-managed-mode-hook))
(add-to-list 'load-path (expand-file-name ".." (file-name-directory (or load-file-name buffer-file-name))))
(require 'codegen-lsp)

(defvar codegen-lsp-ert--bin (make-temp-file "codegen-lsp-ert-bin" t)
  "A folder on `exec-path' with the fake program `their-ls'.")
(let ((program (expand-file-name "their-ls" codegen-lsp-ert--bin)))
  (with-temp-file program (insert "#!/bin/sh\nexit 0\n"))
  (set-file-modes program #o755))
(add-to-list 'exec-path codegen-lsp-ert--bin)

(defmacro codegen-lsp-ert--with (bindings &rest body)
  "BODY with BINDINGS of codegen-lsp's options and a fresh registration."
  (declare (indent 1))
  `(let ((eglot-server-programs '((python-mode . ("their-ls" "--stdio" :initializationOptions (:theirs t)))
                                  ((go-mode) . ("no-such-ls"))
                                  (js-mode . ("their-ls"))))
         (eglot-managed-mode-hook nil)
         (codegen-lsp--entries nil)
         (codegen-lsp-model "Salesforce/codegen-350M-multi")
         (codegen-lsp-languages "auto")
         (codegen-lsp-keep-other-servers t)
         (codegen-lsp-rass-command (list (or (getenv "CODEGEN_LSP_TEST_PYTHON") "python3")
                                         "-m" "rassumfrassum" "--log-level" "info"))
         ,@bindings)
     ,@body))

(defun codegen-lsp-ert--contact (mode)
  "(CLASS . CONTACT) Eglot gets for MODE, as `eglot--guess-contact' computes them."
  (with-temp-buffer
    (setq buffer-file-name (format "/tmp/x.%s" mode))
    (let* ((major-mode mode)
           (guess (eglot--guess-contact)))
      (cons (nth 2 guess) (nth 3 guess)))))

;;;; Loading

(ert-deftest codegen-lsp-ert-loading-changes-nothing ()
  "Loading the package leaves Eglot's servers, hooks and functions as they were."
  (should (equal eglot-server-programs codegen-lsp-ert--programs-before-load))
  (should (equal eglot-managed-mode-hook codegen-lsp-ert--hook-before-load))
  (should-not (advice-member-p #'codegen-lsp--text-document-item 'eglot--TextDocumentItem))
  (should-not (cl-some (lambda (entry) (eq (car entry) 'codegen-lsp--ghost-active)) minor-mode-map-alist)))

;;;; Registration

(ert-deftest codegen-lsp-ert-register-wraps-their-server ()
  "Their installed server and ours behind rass, with its own initializationOptions."
  (codegen-lsp-ert--with ()
    (codegen-lsp-register)
    (let ((contact (codegen-lsp-ert--contact 'python-mode)))
      (should (equal (cl-subseq contact 0 (1+ (length codegen-lsp-rass-command)))
                     (cons 'codegen-lsp-server codegen-lsp-rass-command)))
      (should (equal (nth (1+ (length codegen-lsp-rass-command)) contact) (codegen-lsp--preset)))
      (let ((after-preset (nthcdr (+ 2 (length codegen-lsp-rass-command)) contact)))
        (should (equal (cl-subseq after-preset 0 (+ 4 (length codegen-lsp-server-command)))
                       `("--" "their-ls" "--stdio" "--" ,@codegen-lsp-server-command)))
        (should (equal (plist-get (cl-member-if #'keywordp after-preset) :initializationOptions) '(:theirs t)))
        (should (eq (plist-get (cl-member-if #'keywordp after-preset) :codegen-lsp-wrapped) t))))
    (should (memq #'codegen-lsp-inline-maybe-enable eglot-managed-mode-hook))))

(ert-deftest codegen-lsp-ert-ours-alone-share-one-server ()
  "Modes without an installed server of their own share one codegen-lsp (one model)."
  (codegen-lsp-ert--with ()
    (codegen-lsp-register)
    (should (equal (codegen-lsp-ert--contact 'go-mode) (cons 'codegen-lsp-server codegen-lsp-server-command)))
    (let ((alone (cl-find-if (lambda (entry) (assq 'go-mode (car entry))) codegen-lsp--entries)))
      (should (assq 'c-mode (car alone)))
      (should (assq 'java-mode (car alone)))
      (should-not (assq 'python-mode (car alone))))))

(ert-deftest codegen-lsp-ert-mono-model-registers-python-only ()
  "A -mono model completes Python only: other modes keep their servers untouched."
  (codegen-lsp-ert--with ((codegen-lsp-model "Salesforce/codegen-350M-mono"))
    (codegen-lsp-register)
    (should (equal (sort (mapcar #'car (apply #'append (mapcar #'car codegen-lsp--entries))) #'string<)
                   '(python-mode python-ts-mode)))
    (should (equal (codegen-lsp-ert--contact 'js-mode) '(eglot-lsp-server "their-ls")))))

(ert-deftest codegen-lsp-ert-no-rass-keeps-their-server ()
  "Without rass their server stays alone (no ghost text there), with a warning."
  (codegen-lsp-ert--with ((codegen-lsp-rass-command '("no-such-rass")))
    (let ((warnings nil))
      (cl-letf (((symbol-function 'display-warning) (lambda (_type message &rest _) (push message warnings))))
        (codegen-lsp-register))
      (should (equal (codegen-lsp-ert--contact 'python-mode)
                     '(eglot-lsp-server "their-ls" "--stdio" :initializationOptions (:theirs t))))
      (should (string-match-p "python-mode (their-ls)" (car warnings)))
      (should (equal (codegen-lsp-ert--contact 'go-mode) (cons 'codegen-lsp-server codegen-lsp-server-command))))))

(ert-deftest codegen-lsp-ert-replace-when-asked ()
  "With `codegen-lsp-keep-other-servers' nil, ours replaces theirs."
  (codegen-lsp-ert--with ((codegen-lsp-keep-other-servers nil))
    (codegen-lsp-register)
    (should (equal (codegen-lsp-ert--contact 'python-mode) (cons 'codegen-lsp-server codegen-lsp-server-command)))))

(ert-deftest codegen-lsp-ert-unregister-restores ()
  "`codegen-lsp-unregister' leaves `eglot-server-programs' as it found it."
  (codegen-lsp-ert--with ()
    (let ((before (copy-sequence eglot-server-programs)))
      (codegen-lsp-register)
      (codegen-lsp-register) ; again: no duplicates
      (should (= (length eglot-server-programs) (+ (length before) (length codegen-lsp--entries))))
      (codegen-lsp-unregister)
      (should (equal eglot-server-programs before))
      (should-not (memq #'codegen-lsp-inline-maybe-enable eglot-managed-mode-hook)))))

(ert-deftest codegen-lsp-ert-initialization-options-behind-rass ()
  "Behind rass, their options ride along under codegenLspOthers (the preset splits them)."
  (let ((wrapped (make-instance 'codegen-lsp-server :codegen-lsp-wrapped t
                                :process (make-pipe-process :name "codegen-lsp-ert-1" :noquery t)))
        (alone (make-instance 'codegen-lsp-server
                              :process (make-pipe-process :name "codegen-lsp-ert-2" :noquery t))))
    (setf (eglot--saved-initargs wrapped) '(:initializationOptions (:theirs t)))
    (setf (eglot--saved-initargs alone) nil)
    (should (equal (plist-get (eglot-initialization-options wrapped) :codegenLspOthers) '(:theirs t)))
    (should (equal (plist-get (eglot-initialization-options wrapped) :model) codegen-lsp-model))
    (should (equal (eglot-initialization-options alone) (codegen-lsp-settings)))))

;;;; Status: the lighter

(defun codegen-lsp-ert--status (&rest overrides)
  "A `codegenLsp/status' as the server sends it, with OVERRIDES."
  (let ((status (list :state "ready" :message "ready" :fraction nil :model "bundled" :device "cpu"
                      :dtype "float32" :backend "local" :lastLatencyMs 120.5 :enabled t :snoozedUntil nil
                      :disabledLanguages [] :disabledUris [])))
    (cl-loop for (key value) on overrides by #'cddr do (setq status (plist-put status key value)))
    status))

(ert-deftest codegen-lsp-ert-lighter-follows-the-state ()
  "The lighter says what the server says."
  (with-temp-buffer
    (python-mode)
    (should (equal (codegen-lsp--lighter-text nil nil) " CG:no server"))
    (should (equal (codegen-lsp--lighter-text (codegen-lsp-ert--status :state "loading" :fraction 0.42) t)
                   " CG:loading 42%"))
    (should (equal (codegen-lsp--lighter-text (codegen-lsp-ert--status :state "loading") t) " CG:loading"))
    (should (equal (codegen-lsp--lighter-text (codegen-lsp-ert--status) t) " CG:ready"))
    (should (equal (codegen-lsp--lighter-text (codegen-lsp-ert--status :state "busy") t) " CG:busy"))
    (should (equal (codegen-lsp--lighter-text (codegen-lsp-ert--status :state "remoteDown") t)
                   " CG:remote down"))
    (should (equal (codegen-lsp--lighter-text (codegen-lsp-ert--status :state "error" :message "no torch") t)
                   " CG:error"))
    (should (string-match-p "no torch" (codegen-lsp--tooltip (codegen-lsp-ert--status :state "error"
                                                                                        :message "no torch"))))
    (should (equal (codegen-lsp--lighter-text (codegen-lsp-ert--status :state "disabled" :enabled :json-false) t)
                   " CG:off"))
    (should (equal (codegen-lsp--lighter-text
                    (codegen-lsp-ert--status :state "disabled" :enabled :json-false
                                             :snoozedUntil (+ (float-time) 600))
                    t)
                   " CG:snoozed"))
    (should (equal (codegen-lsp--lighter-text (codegen-lsp-ert--status :disabledLanguages ["python"]) t)
                   " CG:off"))
    (should (equal (codegen-lsp--lighter-text (codegen-lsp-ert--status :disabledLanguages ["go"]) t)
                   " CG:ready"))))

(ert-deftest codegen-lsp-ert-off-in-this-buffer ()
  "A buffer whose document the server switched off is off; others are not."
  (with-temp-buffer
    (python-mode)
    (setq buffer-file-name "/tmp/codegen-lsp-ert/a.py")
    (should (equal (codegen-lsp-off-reason (codegen-lsp-ert--status :disabledUris (vector (codegen-lsp--uri))))
                   "off in this buffer"))
    (should-not (codegen-lsp-off-reason (codegen-lsp-ert--status :disabledUris ["file:///tmp/other.py"])))
    (should (equal (codegen-lsp-off-reason (codegen-lsp-ert--status :disabledLanguages ["python"]))
                   "off for python"))
    (set-buffer-modified-p nil)))

;;;; Keys and menus (the ghost text put in place as a reply would)

(defmacro codegen-lsp-ert--in-python (text &rest body)
  "BODY in a python-mode buffer holding TEXT, point at its end, ghost text mode on."
  (declare (indent 1))
  `(with-temp-buffer
     (python-mode)
     (insert ,text)
     (codegen-lsp-inline-mode 1)
     (switch-to-buffer (current-buffer))
     ,@body))

(defun codegen-lsp-ert--show (&rest texts)
  "Show TEXTS as the suggestions at point, as a reply to a request does."
  (setq codegen-lsp--anchor (codegen-lsp--here))
  (codegen-lsp--on-reply (current-buffer) codegen-lsp--generation
                         (list :items (vconcat (mapcar (lambda (text) (list :insertText text)) texts)))
                         nil))

(ert-deftest codegen-lsp-ert-tab-keeps-its-meaning ()
  "TAB indents while no ghost text shows, and accepts it while it shows."
  (codegen-lsp-ert--in-python "if x:\n"
    (execute-kbd-macro (kbd "TAB"))
    (should (equal (buffer-substring (line-beginning-position) (point)) "    "))
    (should-not (codegen-lsp-inline-text))
    (codegen-lsp-ert--show "return 1")
    (should (equal (codegen-lsp-inline-text) "return 1"))
    (execute-kbd-macro (kbd "TAB"))
    (should (equal (buffer-string) "if x:\n    return 1"))
    (should-not (codegen-lsp-inline-text))))

(ert-deftest codegen-lsp-ert-typing-into-the-ghost-text-keeps-it ()
  "A typed character that the ghost text starts with keeps the rest: no request, no blank moment."
  (codegen-lsp-ert--in-python "x = "
    (codegen-lsp-ert--show "len(items)")
    (let ((overlays 0))
      (cl-letf (((symbol-function 'codegen-lsp--request) (lambda (&rest _) (error "Asked the server"))))
        (execute-kbd-macro "le")
        (should (equal (codegen-lsp-inline-text) "n(items)"))
        (should-not codegen-lsp--timer) ; nothing scheduled either
        (should codegen-lsp--ghost-active)
        (execute-kbd-macro (kbd "TAB"))
        (should (equal (buffer-string) "x = len(items)"))
        (setq overlays (length (overlays-in (point-min) (point-max)))))
      (should (= overlays 0)))
    ;; A character the ghost text does not start with: gone, and a new request is on its way.
    (codegen-lsp-ert--show "foo")
    (execute-kbd-macro "z")
    (should-not (codegen-lsp-inline-text))
    (should (timerp codegen-lsp--timer))
    (codegen-lsp-inline-clear)))

(ert-deftest codegen-lsp-ert-no-ghost-text-under-company ()
  "No ghost text while company's popup is up; company opening hides it."
  (require 'company)
  (codegen-lsp-ert--in-python "import os\nos.pa"
    (company-mode 1)
    (setq-local company-backends (list (lambda (command &rest _)
                                         (pcase command
                                           ('prefix (company-grab-symbol))
                                           ('candidates (list "path" "pardir"))))))
    (codegen-lsp-ert--show "th.join(a, b)")
    (should (codegen-lsp-inline-text))
    (company-manual-begin)
    (should company-candidates)
    (should-not (codegen-lsp-inline-text)) ; company-completion-started-hook hid it
    (codegen-lsp-ert--show "th.join(a, b)")
    (should-not (codegen-lsp-inline-text)) ; a reply while the popup is up shows nothing
    (company-abort)
    (codegen-lsp-ert--show "th.join(a, b)")
    (should (equal (codegen-lsp-inline-text) "th.join(a, b)"))
    (codegen-lsp-inline-clear)))

(ert-deftest codegen-lsp-ert-cycling-asks-for-alternatives-once ()
  "With one suggestion, the first M-] asks for alternatives; with several it cycles."
  (codegen-lsp-ert--in-python "x = "
    (codegen-lsp-ert--show "1")
    (let ((asked nil))
      (cl-letf (((symbol-function 'codegen-lsp--request)
                 (lambda (invoked alternatives) (push (list invoked alternatives) asked))))
        (execute-kbd-macro (kbd "M-]"))
        (should (equal asked '((t t))))
        (execute-kbd-macro (kbd "M-]"))
        (should (= (length asked) 1)))) ; asked once per place
    ;; The answer: the one showing stays first, the next one shows.
    (setq codegen-lsp--anchor (codegen-lsp--here))
    (codegen-lsp--on-reply (current-buffer) codegen-lsp--generation
                           '(:items [(:insertText "1") (:insertText "2") (:insertText "3")])
                           (car codegen-lsp--items))
    (should (equal (codegen-lsp-inline-text) "2"))
    (execute-kbd-macro (kbd "M-]"))
    (should (equal (codegen-lsp-inline-text) "3"))
    (execute-kbd-macro (kbd "M-{"))
    (should (equal (codegen-lsp-inline-text) "2"))
    (codegen-lsp-inline-clear)))

(ert-deftest codegen-lsp-ert-off-asks-nothing ()
  "While the server says this buffer is off, typing sends no request."
  (codegen-lsp-ert--in-python "x = "
    (cl-letf (((symbol-function 'codegen-lsp--status-here)
               (lambda () (codegen-lsp-ert--status :state "disabled" :enabled :json-false)))
              ((symbol-function 'codegen-lsp--request) (lambda (&rest _) (error "Asked the server"))))
      (codegen-lsp-inline-suggest nil)
      (codegen-lsp-inline-suggest t)
      (should-not (codegen-lsp-inline-text)))))

(ert-deftest codegen-lsp-ert-asks-again-when-the-model-is-ready ()
  "An answer that came empty while the model loaded is asked again once it is ready, if the cursor waits."
  (codegen-lsp-ert--in-python "x = "
    (let ((server (make-instance 'codegen-lsp-server
                                 :process (make-pipe-process :name "codegen-lsp-ert-3" :noquery t))))
      (setf (eglot--managed-buffers server) (list (current-buffer)))
      (codegen-lsp--set-status server (codegen-lsp-ert--status :state "loading" :fraction 0.5))
      (setq codegen-lsp--anchor (codegen-lsp--here)) ; a request went out here and came back empty
      (codegen-lsp--set-status server (codegen-lsp-ert--status :state "busy"))
      (should-not codegen-lsp--timer) ; busy -> ...: nothing to ask again
      (codegen-lsp--set-status server (codegen-lsp-ert--status :state "loading" :fraction 1.0))
      (codegen-lsp--set-status server (codegen-lsp-ert--status))
      (should (timerp codegen-lsp--timer))
      (codegen-lsp-inline-clear)
      ;; The cursor moved on since: nothing.
      (codegen-lsp--set-status server (codegen-lsp-ert--status :state "loading"))
      (setq codegen-lsp--anchor (cons (buffer-chars-modified-tick) (1- (point))))
      (codegen-lsp--set-status server (codegen-lsp-ert--status))
      (should-not codegen-lsp--timer))))

;;;; Diagnose

(ert-deftest codegen-lsp-ert-doctor-command ()
  "The doctor runs with the program of `codegen-lsp-server-command'."
  (let ((codegen-lsp-model "bundled"))
    (let ((codegen-lsp-server-command '("codegen-lsp" "serve" "--stdio")))
      (should (equal (codegen-lsp--doctor-command) '("codegen-lsp" "doctor" "--model" "bundled"))))
    (let ((codegen-lsp-server-command '("python3" "-m" "codegen_lsp.lsp_server" "serve" "--stdio")))
      (should (equal (codegen-lsp--doctor-command)
                     '("python3" "-m" "codegen_lsp.lsp_server" "doctor" "--model" "bundled"))))))

(provide 'codegen-lsp-ert)
;;; codegen-lsp-ert.el ends here
