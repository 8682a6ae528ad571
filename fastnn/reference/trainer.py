"""Mini-batch training loop (the book's ``common/trainer.py``)."""

import numpy as np

from .optimizer import SGD, Momentum, Nesterov, AdaGrad, RMSprop, Adam


class Trainer:
    """Train a network with mini-batch gradient descent and log the progress.

    Parameters
    ----------
    network : object
        Has ``params``, ``gradient(x, t)``, ``loss(x, t)``, ``accuracy(x, t)``.
    x_train, t_train, x_test, t_test : ndarray
    epochs : int, default 20
    mini_batch_size : int, default 100
    optimizer : str, default 'SGD'
        Case-insensitive: sgd, momentum, nesterov, adagrad, rmsprop (also the
        old misspelling 'rmsprpo'), adam.  Unknown names raise KeyError.
    optimizer_param : dict, default {'lr': 0.01}
        Keyword arguments of the optimizer class.
    evaluate_sample_num_per_epoch : int or None
        Per-epoch accuracy uses only the first k train/test samples.
    verbose : bool, default True

    Attributes
    ----------
    iter_per_epoch : float
        ``max(train_size / mini_batch_size, 1)``.  Book quirk: a float, so an
        epoch is only detected when ``current_iter % iter_per_epoch == 0``.
    max_iter : int
        ``int(epochs * iter_per_epoch)``.
    train_loss_list, train_acc_list, test_acc_list : list
    """

    optimizer_class_dict = {'sgd': SGD, 'momentum': Momentum, 'nesterov': Nesterov,
                            'adagrad': AdaGrad, 'rmsprop': RMSprop, 'adam': Adam,
                            'rmsprpo': RMSprop}  # alias: the pre-2020 key (typo)

    def __init__(self, network, x_train, t_train, x_test, t_test,
                 epochs=20, mini_batch_size=100,
                 optimizer='SGD', optimizer_param={'lr': 0.01},
                 evaluate_sample_num_per_epoch=None, verbose=True):
        self.network = network
        self.verbose = verbose
        self.x_train = x_train
        self.t_train = t_train
        self.x_test = x_test
        self.t_test = t_test
        self.epochs = epochs
        self.batch_size = mini_batch_size
        self.evaluate_sample_num_per_epoch = evaluate_sample_num_per_epoch

        self.optimizer = self.optimizer_class_dict[optimizer.lower()](**optimizer_param)

        self.train_size = x_train.shape[0]
        self.iter_per_epoch = max(self.train_size / mini_batch_size, 1)
        self.max_iter = int(epochs * self.iter_per_epoch)
        self.current_iter = 0
        self.current_epoch = 0

        self.train_loss_list = []
        self.train_acc_list = []
        self.test_acc_list = []

    def _learn(self, x_batch, t_batch):
        """The book's update: gradients, then the optimizer step."""
        grads = self.network.gradient(x_batch, t_batch)
        self.optimizer.update(self.network.params, grads)

    def train_step(self):
        """One update on a batch drawn with replacement, then the logging.

        The logged loss is computed *after* the update, with default flags.
        """
        batch_mask = np.random.choice(self.train_size, self.batch_size)
        x_batch = self.x_train[batch_mask]
        t_batch = self.t_train[batch_mask]

        self._learn(x_batch, t_batch)

        loss = self.network.loss(x_batch, t_batch)
        self.train_loss_list.append(loss)
        if self.verbose:
            print("train loss:" + str(loss))

        if self.current_iter % self.iter_per_epoch == 0:
            self.current_epoch += 1

            x_train_sample, t_train_sample = self.x_train, self.t_train
            x_test_sample, t_test_sample = self.x_test, self.t_test
            if self.evaluate_sample_num_per_epoch is not None:
                k = self.evaluate_sample_num_per_epoch
                x_train_sample, t_train_sample = self.x_train[:k], self.t_train[:k]
                x_test_sample, t_test_sample = self.x_test[:k], self.t_test[:k]

            train_acc = self.network.accuracy(x_train_sample, t_train_sample)
            test_acc = self.network.accuracy(x_test_sample, t_test_sample)
            self.train_acc_list.append(train_acc)
            self.test_acc_list.append(test_acc)

            if self.verbose:
                print("=== epoch:" + str(self.current_epoch) + ", train acc:" + str(train_acc)
                      + ", test acc:" + str(test_acc) + " ===")
        self.current_iter += 1

    def train(self):
        """Run ``max_iter`` steps, then print the full test accuracy.

        Book quirk: returns None and does not store the final accuracy.
        """
        for i in range(self.max_iter):
            self.train_step()

        test_acc = self.network.accuracy(self.x_test, self.t_test)

        if self.verbose:
            print("=============== Final Test Accuracy ===============")
            print("test acc:" + str(test_acc))
