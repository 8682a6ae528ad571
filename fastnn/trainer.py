"""Mini-batch training loop (the book's ``common/trainer.py``) with fastnn's optimizers.

Same constructor, attributes, evaluation schedule and printed lines as the book's ``Trainer``
(book-compat.md section 9), quirks included: ``iter_per_epoch`` is a float, so an epoch is
only detected when ``current_iter % iter_per_epoch == 0``; the logged loss is taken after the
update with the network's default flags; optimizer names are case-insensitive and the old
misspelling 'rmsprpo' is accepted for RMSprop. Additions:

* ``train()`` returns the history it recorded (the book returns None, so book scripts are
  unaffected): ``{'train_loss': [...], 'train_acc': [...], 'test_acc': [...],
  'final_test_acc': float, 'iterations': int, 'seconds': float}``; the book's attribute lists
  are kept too, and the final accuracy is also stored as ``final_test_acc``;
* ``progress``: a tqdm progress bar. ``None`` (default) shows one when ``verbose`` is False,
  stderr is a terminal, tqdm is installed and the run is long (>= 500 iterations); True forces
  it (ImportError with the install hint if tqdm is missing), False never shows it. With
  ``verbose=True`` the book's lines are printed unchanged and no bar is drawn.
"""
import sys
import time


from fastnn.optimizer import SGD, Momentum, Nesterov, AdaGrad, RMSprop, Adam
from fastnn.reference.trainer import Trainer as _ReferenceTrainer

_LONG_RUN = 500


def _tqdm():
    try:
        from tqdm.auto import tqdm
    except ImportError:
        raise ImportError("the progress bar needs tqdm: pip install 'fastnn[cli]' "
                          "(or pip install tqdm)") from None
    return tqdm


class Trainer(_ReferenceTrainer):
    """Train a network with mini-batch gradient descent and log the progress.

    Parameters
    ----------
    network : object
        Has ``params``, ``gradient(x, t)``, ``loss(x, t)``, ``accuracy(x, t)``.
    x_train, t_train, x_test, t_test : ndarray
    epochs : int, default 20
    mini_batch_size : int, default 100
    optimizer : str, default 'SGD'
        Case-insensitive: sgd, momentum, nesterov, adagrad, rmsprop (also 'rmsprpo'), adam.
        Unknown names raise KeyError.
    optimizer_param : dict, default {'lr': 0.01}
        Keyword arguments of the optimizer class.
    evaluate_sample_num_per_epoch : int or None
        Per-epoch accuracy uses only the first k train/test samples.
    verbose : bool, default True
    progress : bool or None, default None
        tqdm progress bar (see the module docstring).

    Attributes
    ----------
    iter_per_epoch : float
        ``max(train_size / mini_batch_size, 1)``.
    max_iter : int
        ``int(epochs * iter_per_epoch)``.
    current_iter, current_epoch : int
    train_loss_list, train_acc_list, test_acc_list : list
    final_test_acc : float or None
        Set by ``train()``.
    """

    optimizer_class_dict = {'sgd': SGD, 'momentum': Momentum, 'nesterov': Nesterov,
                            'adagrad': AdaGrad, 'rmsprop': RMSprop, 'adam': Adam,
                            'rmsprpo': RMSprop}  # alias: the pre-2020 key (typo)

    def __init__(self, network, x_train, t_train, x_test, t_test,
                 epochs=20, mini_batch_size=100,
                 optimizer='SGD', optimizer_param={'lr': 0.01},
                 evaluate_sample_num_per_epoch=None, verbose=True, progress=None):
        super().__init__(network, x_train, t_train, x_test, t_test, epochs, mini_batch_size,
                         optimizer, optimizer_param, evaluate_sample_num_per_epoch, verbose)
        self.progress = progress
        self.final_test_acc = None
        self._bar = None

    def _learn(self, x_batch, t_batch):
        """The book's ``gradient`` then ``optimizer.update``, as the network's ``train_step``
        when it has one (fastnn networks: the same results, the update fused into the pass)."""
        step = getattr(self.network, "train_step", None)
        if step is None:
            super()._learn(x_batch, t_batch)
        else:
            step(x_batch, t_batch, self.optimizer)

    def train_step(self):
        """One update on a batch drawn with replacement, then the logging (the book's step;
        the progress bar, when shown, gets the latest epoch's figures)."""
        epoch = self.current_epoch
        super().train_step()
        if self._bar is not None and self.current_epoch != epoch:
            self._bar.set_postfix(epoch=self.current_epoch,
                                  loss="%.4f" % float(self.train_loss_list[-1]),
                                  train_acc="%.4f" % float(self.train_acc_list[-1]),
                                  test_acc="%.4f" % float(self.test_acc_list[-1]),
                                  refresh=False)

    def _want_bar(self):
        if self.progress is not None:
            return bool(self.progress) and not self.verbose
        if self.verbose or self.max_iter < _LONG_RUN:
            return False
        try:
            if not sys.stderr.isatty():
                return False
            _tqdm()
        except (ImportError, AttributeError, ValueError):
            return False
        return True

    def train(self):
        """Run ``max_iter`` steps, then evaluate (and with verbose print) the full test accuracy.

        Returns
        -------
        dict
            ``train_loss``, ``train_acc``, ``test_acc`` (the attribute lists themselves),
            ``final_test_acc``, ``iterations`` and ``seconds`` (wall time of the loop).
        """
        t0 = time.perf_counter()
        if self._want_bar():
            tqdm = _tqdm()
            with tqdm(total=self.max_iter, unit="step", dynamic_ncols=True,
                      mininterval=0.25) as bar:
                self._bar = bar
                try:
                    for i in range(self.max_iter):
                        self.train_step()
                        bar.update(1)
                finally:
                    self._bar = None
        else:
            for i in range(self.max_iter):
                self.train_step()
        seconds = time.perf_counter() - t0

        test_acc = self.network.accuracy(self.x_test, self.t_test)
        self.final_test_acc = test_acc

        if self.verbose:
            print("=============== Final Test Accuracy ===============")
            print("test acc:" + str(test_acc))
        return {"train_loss": self.train_loss_list, "train_acc": self.train_acc_list,
                "test_acc": self.test_acc_list, "final_test_acc": float(test_acc),
                "iterations": self.max_iter, "seconds": seconds}
